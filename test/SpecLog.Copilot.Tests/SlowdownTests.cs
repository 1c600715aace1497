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

    /// <summary>
    /// Adaptive ping-pong: once the other pilot lets two waits in a row pass without proposing anything, a pilot's next batches close at
    /// once (a slow pilot costs the fast one no waiting); as soon as the other pilot answers a proposal within the wait,
    /// batches wait for it again. Without the rule every batch of the fast pilot waited out PingPongWait.
    /// </summary>
    [Fact]
    public void A_pilot_stops_waiting_for_a_late_pilot_and_waits_again_once_it_answers_in_time()
    {
        var h = PingPongHarness(takeoverTimeout: Harness.Defaults(3).TakeoverTimeout);
        FastAccept<int>? Proposed(int log, long slot) => ProposedIn(h, log, slot);

        // Log 1's pilot (replica 1) starts without the turn: its first batch waits out the ping-pong wait.
        h.Submit(1, client: 0, seq: 1);
        Assert.Null(Proposed(1, 0));
        h.Advance(4_000);
        Assert.Null(Proposed(1, 0));
        h.Advance(1_000);
        Assert.NotNull(Proposed(1, 0));

        // One silent wait may be a hiccup: the next batch waits again, and after a second silent wait...
        h.Submit(1, client: 1, seq: 1);
        Assert.Null(Proposed(1, 1));
        h.Advance(5_000);
        Assert.NotNull(Proposed(1, 1));

        // ...log 1's pilot stops waiting for log 0's: the next batch closes at once.
        h.Submit(1, client: 5, seq: 1);
        Assert.NotNull(Proposed(1, 2));

        // Log 0's pilot answers log 1's latest proposal at once (its entry depends on it): in time again.
        h.Deliver(e => e.To == 0 && e.Message is FastAccept<int> { Log: 1 });
        h.Submit(0, client: 2, seq: 1);
        Assert.Equal(2, Proposed(0, 0)!.Value.Dep);
        h.Deliver(e => e.To == 1 && e.Message is FastAccept<int> { Log: 0 });

        // That answer was log 1's turn; after it, batches wait for log 0's pilot again.
        h.Submit(1, client: 3, seq: 1);
        Assert.NotNull(Proposed(1, 3));
        h.Submit(1, client: 4, seq: 1);
        Assert.Null(Proposed(1, 4));
        h.Advance(4_000);
        Assert.Null(Proposed(1, 4));
        h.Advance(1_000);
        Assert.NotNull(Proposed(1, 4));
        h.ThrowIfBroken();
    }

    /// <summary>
    /// Adaptive ping-pong, the other rule: a pilot whose proposal the other pilot answers (proposes an entry depending
    /// on it) more than two waits late stops waiting for it, even though it is not silent; an answer within the wait
    /// makes it wait again.
    /// </summary>
    [Fact]
    public void A_pilot_stops_waiting_for_a_pilot_that_answers_more_than_two_waits_late()
    {
        var h = PingPongHarness(takeoverTimeout: 1_000_000);
        FastAccept<int>? Proposed(int log, long slot) => ProposedIn(h, log, slot);

        // Log 0's pilot (replica 0) proposes; log 1's pilot hears of it 11 ms later and answers at once.
        h.Submit(0, client: 0, seq: 1);
        Assert.NotNull(Proposed(0, 0));
        h.Advance(11_000);
        h.Deliver(e => e.To == 1 && e.Message is FastAccept<int> { Log: 0 });
        h.Submit(1, client: 1, seq: 1);
        Assert.Equal(0, Proposed(1, 0)!.Value.Dep);
        h.Deliver(e => e.To == 0 && e.Message is FastAccept<int> { Log: 1 });

        // That answer was its turn, and it came more than two waits late: no batch of log 0's pilot waits any more.
        h.Submit(0, client: 2, seq: 1);
        Assert.NotNull(Proposed(0, 1));
        h.Submit(0, client: 3, seq: 1);
        Assert.NotNull(Proposed(0, 2));

        // Log 1's pilot answers log 0's latest at once: log 0's pilot waits for its turns again.
        h.Deliver(e => e.To == 1 && e.Message is FastAccept<int> { Log: 0 });
        h.Submit(1, client: 4, seq: 1);
        Assert.Equal(2, Proposed(1, 1)!.Value.Dep);
        h.Deliver(e => e.To == 0 && e.Message is FastAccept<int> { Log: 1 });
        h.Submit(0, client: 5, seq: 1);
        Assert.NotNull(Proposed(0, 3));
        h.Submit(0, client: 6, seq: 1);
        Assert.Null(Proposed(0, 4));
        h.Advance(5_000);
        Assert.NotNull(Proposed(0, 4));
        h.ThrowIfBroken();
    }

    /// <summary>Three replicas with a 5 ms ping-pong wait and no heartbeats, elections or retransmissions in the way.</summary>
    private static Harness PingPongHarness(long takeoverTimeout)
    {
        var d = Harness.Defaults(3);
        return new Harness(new CopilotOptions
        {
            ReplicaCount = 3,
            HeartbeatInterval = 1_000_000,
            ElectionTimeout = 10_000_000,
            TakeoverTimeout = takeoverTimeout,
            PingPongWait = 5_000,
            FastPathWait = d.FastPathWait,
            RetransmitInterval = 1_000_000,
            BackoffBase = d.BackoffBase,
            BackoffMax = d.BackoffMax,
            PipelineWindow = d.PipelineWindow,
        });
    }

    /// <summary>The pending FastAccept proposing <paramref name="slot"/> of <paramref name="log"/>, if any.</summary>
    private static FastAccept<int>? ProposedIn(Harness h, int log, long slot) =>
        h.Pending.Select(e => e.Message).OfType<FastAccept<int>>().FirstOrDefault(m => m.Log == log && m.Slot == slot);

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
