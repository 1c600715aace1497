using System.Collections.Concurrent;
using System.Diagnostics;
using SpecLog.Consumer;
using SpecLog.Samples.FraudDetection;

namespace SpecLog.Silo.Tests;

/// <summary>
/// A consumer process killed with <c>kill -9</c> resumes from its checkpoint: the fraud-detection sample consumes a
/// silo process's log (Azure Table membership and Azure Blob checkpoints on a real Azurite), is killed mid-way and
/// started again, and its verdicts file then holds every payment's verdict exactly once, equal to what the model gives
/// over the confirmed log.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class ConsumerProcessTests(ITestOutputHelper log)
{
    private const int Payments = 3000;
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 300_000)]
    public async Task A_consumer_killed_with_kill_9_resumes_from_its_azure_checkpoint_and_releases_each_verdict_once()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = new TempFolder("speclog-consumer-");
        var root = temp.Path;
        var output = new ConcurrentQueue<string>();
        var clusterId = "consumer-" + Guid.NewGuid().ToString("N")[..10];
        var verdicts = Path.Combine(root, "verdicts.txt");
        try
        {
            await using var azurite = await AzuriteServer.StartAsync(ct);
            await using var silo = SiloProcess.Start(
                "silo", Path.Combine(root, "data"), 3, output,
                "--Silo:Clustering=AzureStorage", "--Silo:NodeName=node-0", "--SpecLog:Nodes:0=node-0", "--SpecLog:Replication:Mode=Single", $"--Silo:ClusterId={clusterId}",
                $"--Silo:ServiceId={clusterId}", $"--Silo:AzureStorage:ConnectionString={azurite.ConnectionString}");
            await using var client = await TestClient.ConnectClusterAsync(azurite.ConnectionString, clusterId, StepTimeout, ct);
            string[] connection = ["--azure", azurite.ConnectionString, "--cluster-id", clusterId];

            // Payments go in while the consumer runs; it is killed once it has released a third of their verdicts.
            var producer = SampleProcess.Start("SpecLogFraudDll", "producer", output, [.. connection, "--role", "produce", "--count", $"{Payments}", "--rate", "500"]);
            var consumer = SampleProcess.Start("SpecLogFraudDll", "consumer#1", output, [.. connection, "--role", "consume", "--outputs-file", verdicts]);
            await Waits.UntilAsync(() => Lines(verdicts) >= Payments / 3, "the first consumer released a third of the verdicts", StepTimeout, ct);
            var checkpoint = await client.Grains.GetGrain<IConsumerCheckpointGrain>(ConsumerCheckpoints.Key("fraud", ConsumerCheckpoints.WholeLog)).GetAsync();
            Assert.NotNull(checkpoint);
            log.WriteLine($"checkpoint in Azure Blob storage before the kill: position {checkpoint.Position}, released below {checkpoint.ReleasedThrough}, {checkpoint.State?.Length ?? 0} state bytes");
            SampleProcess.Kill(consumer, output, "consumer#1");
            var atKill = Lines(verdicts);

            var restarted = SampleProcess.Start("SpecLogFraudDll", "consumer#2", output, [.. connection, "--role", "consume", "--outputs-file", verdicts]);
            await producer.WaitForExitAsync(ct);
            Assert.Equal(0, producer.ExitCode);
            await Waits.UntilAsync(() => Lines(verdicts) >= Payments, "the restarted consumer released every verdict", StepTimeout, ct);
            SampleProcess.Kill(restarted, output, "consumer#2");
            log.WriteLine($"{atKill} verdicts in the file at the kill; {Lines(verdicts)} at the end");

            // Every payment's verdict once, as the model gives it over the committed log.
            var lines = File.ReadAllLines(verdicts);
            var ids = lines.Select(l => l.Split(' ', 3)[0] + " " + l.Split(' ', 3)[1]).ToList();
            Assert.Equal(ids.Count, ids.Distinct().Count());
            var end = lines.Max(l => long.Parse(l.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture)) + 1;
            var records = await client.Log.ReadRangeAsync(0, end, ct);
            FraudModel.ScoringTime = TimeSpan.Zero;
            var state = FraudModel.NewState();
            var expected = new List<string>();
            var buffer = new OutputBuffer<Verdict>();
            foreach (var r in records)
            {
                buffer.Clear();
                state = FraudModel.Apply(state, new ConsumedRecord(r.Gsn, r.Shard, r.Payload), buffer);
                for (var i = 0; i < buffer.Count; i++)
                {
                    expected.Add($"{r.Gsn} {i} {r.Shard} {buffer[i]}");
                }
            }

            Assert.Equal(Payments, expected.Count);
            Assert.Equal(expected, lines);
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, output));
            throw;
        }
    }

    private static int Lines(string path) => File.Exists(path) ? File.ReadAllLines(path).Length : 0;
}
