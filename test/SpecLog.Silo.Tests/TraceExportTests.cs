using System.Collections.Concurrent;

namespace SpecLog.Silo.Tests;

/// <summary>
/// A silo exporting traces over OTLP to a collector that is not there: it starts, serves appends with every trace
/// sampled, and stays up (export failures are the exporter's, never the log's).
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class TraceExportTests(ITestOutputHelper log)
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 240_000)]
    public async Task A_silo_exporting_traces_to_a_missing_collector_starts_and_serves_appends()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = new TempFolder("speclog-otlp-");
        var output = new ConcurrentQueue<string>();
        var nobody = SiloProcess.FreePort(); // nothing listens there
        try
        {
            await using var silo = SiloProcess.Start(
                "silo", Path.Combine(temp.Path, "data"), 2, output,
                "--Silo:Dashboard:Enabled=false", $"--Silo:Telemetry:OtlpEndpoint=http://127.0.0.1:{nobody}", "--Silo:Telemetry:TraceSampleRatio=1",
                "--SpecLog:Replication:Mode=Single");
            await Waits.UntilAsync(() => silo.IsUp, "the silo is up", StepTimeout, ct);
            await using var client = await TestClient.ConnectAsync(silo, StepTimeout, ct);
            var gsns = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => client.Log.AppendAsync(new byte[] { 2, (byte)i }, cancellationToken: ct)));
            Assert.Equal(200, gsns.Distinct().Count());

            // The exporter's batches (every 5 s by default) fail meanwhile; the silo keeps serving.
            await Task.Delay(TimeSpan.FromSeconds(6), ct);
            Assert.False(silo.HasExited);
            var more = await client.Log.AppendAsync(new byte[] { 3 }, cancellationToken: ct);
            Assert.True(more > gsns.Max());
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, output));
            throw;
        }
    }
}
