using System.Diagnostics;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The rollback demonstration sample, run as its README says (one command; it starts Azurite and three silo
/// processes itself): the silo of shard 2 is killed while the fraud-detection consumer holds speculative records of
/// it, and what the sample prints is checked: the mis-speculated range, the rollback, verdicts identical to a replay
/// of the confirmed log, each released once, and the end-to-end latency beside Scalog mode's.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class RollbackDemoTests(ITestOutputHelper log)
{
    [Fact(Timeout = 600_000)]
    public async Task The_demonstration_rolls_back_a_killed_shards_records_and_releases_what_the_confirmed_log_gives()
    {
        var ct = TestContext.Current.CancellationToken;
        var start = RecordedDll.StartInfo("SpecLogRollbackDemoDll", ["--attempts", "8"]);
        start.Environment["SPECLOG_SILO_DLL"] = SiloProcess.LocateSiloDll();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(8));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        var output = await stdout + await stderr;
        log.WriteLine(output);
        Assert.Equal(0, process.ExitCode);
        var lines = output.Split('\n');
        var rollback = Assert.Single(lines, l => l.Contains("ROLLBACK: positions [", StringComparison.Ordinal));
        Assert.Contains("(failed shard 2)", rollback);
        Assert.Contains(lines, l => l.Contains("the ordering layer declared shard 2 failed", StringComparison.Ordinal));
        var result = Assert.Single(lines, l => l.Contains("RESULT:", StringComparison.Ordinal));
        Assert.Contains("are identical to the undisturbed replay's", result);
        Assert.Contains("each released once", result);
        var e2e = Assert.Single(lines, l => l.Contains("E2E, payment appended → verdict released: SpecLog p50 ", StringComparison.Ordinal));
        Assert.Contains("Scalog mode p50 ", e2e);
    }
}
