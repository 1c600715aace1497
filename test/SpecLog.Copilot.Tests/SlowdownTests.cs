namespace SpecLog.Copilot.Tests;

/// <summary>
/// Fault-free and slowed-pilot runs of the simulator: ping-pong batching keeps both pilots on the fast path, and a
/// slow pilot does not slow Copilot down (fast takeover and null-dependency elimination) while it does slow Multi-Paxos.
/// </summary>
public sealed class SlowdownTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void Ping_pong_batching_keeps_a_fault_free_run_on_the_fast_path(int n)
    {
        var wait = long.TryParse(Environment.GetEnvironmentVariable("COPILOT_PPWAIT"), out var w) ? w : 5_000;
        var proposed = 0L;
        var fast = 0L;
        for (var seed = 1; seed <= 20; seed++)
        {
            var sim = new Simulation(seed, n, tweak: t =>
            {
                t.Faults = false;
                t.DropRate = 0;
                t.DuplicateRate = 0;
                t.MaxDelay = 1_000;
                t.PingPongWait = wait;
                t.MaxBatch = 256;
                t.Clients = 8;
                t.CommandsPerClient = 30;
                t.ThinkTime = 2_000;
            });
            sim.Run();
            proposed += sim.Counters["Proposed"];
            fast += sim.Counters["FastCommits"];
        }

        output.WriteLine($"n={n}: {fast} of {proposed} proposals committed on the fast path");
        Assert.True(fast >= 0.9 * proposed, $"only {fast} of {proposed} proposals took the fast path");
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void A_slow_pilot_does_not_slow_copilot_down_but_slows_multi_paxos(int n)
    {
        var healthy = Median(n, ReplicationMode.Copilot, slow: 0);
        var slowCopilot = Median(n, ReplicationMode.Copilot, slow: 20_000);
        var slowPaxos = Median(n, ReplicationMode.MultiPaxos, slow: 20_000);
        output.WriteLine($"n={n} median client latency: Copilot healthy {healthy} µs, Copilot with pilot +20 ms each way {slowCopilot} µs, Multi-Paxos with leader +20 ms each way {slowPaxos} µs");
        Assert.True(slowCopilot < healthy + 5_000, "a slow pilot slowed Copilot down");
        Assert.True(slowPaxos > 40_000, "the slow leader should slow Multi-Paxos down (sanity check of the setup)");
    }

    private static long Median(int n, ReplicationMode mode, long slow)
    {
        var all = new List<long>();
        for (var seed = 1; seed <= 10; seed++)
        {
            var sim = new Simulation(seed, n, mode, tweak: t =>
            {
                t.Faults = false;
                t.DropRate = 0;
                t.DuplicateRate = 0;
                t.MaxDelay = 1_000;
                t.PingPongWait = 2_000;
                t.MaxBatch = 256;
                t.TakeoverTimeout = 10_000;
                t.Clients = 4;
                t.CommandsPerClient = 40;
                t.ThinkTime = 1_000;
                if (slow > 0)
                {
                    t.SlowReplica = (0, slow);
                }
            });
            sim.Run();
            all.AddRange(sim.Latencies);
        }

        all.Sort();
        return all[all.Count / 2];
    }
}
