namespace SpecLog.Copilot.Tests;

/// <summary>Small, hand-driven checks of single protocol rules.</summary>
public sealed class ProtocolTests
{
    private const int P = 0;
    private const int Q = 1;
    private const int A = 2;

    [Theory]
    [InlineData(3, 1, 2, 2)]
    [InlineData(5, 2, 3, 3)]
    [InlineData(7, 3, 5, 4)]
    public void Quorum_sizes(int n, int f, int fast, int slow)
    {
        var options = new CopilotOptions { ReplicaCount = n };
        Assert.Equal(f, options.F);
        Assert.Equal(fast, options.FastQuorum);
        Assert.Equal(slow, options.SlowQuorum);
    }

    [Fact]
    public void Invalid_options_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CopilotOptions { ReplicaCount = 4 }.Validate());
        Assert.Throws<ArgumentException>(() => new CopilotOptions { ElectionTimeout = 1, HeartbeatInterval = 10 }.Validate());
        Assert.Throws<ArgumentException>(() => new CopilotOptions { PipelineWindow = 0 }.Validate());
    }

    /// <summary>
    /// An acceptor refuses P.i → Q.j only if it already accepted some Q.k with k &gt; j whose dependency lies before
    /// P.i — and an entry it learnt through Accept alone counts as much as one learnt through FastAccept.
    /// </summary>
    [Fact]
    public void Compatibility_check_uses_entries_accepted_through_accept_too()
    {
        var acceptor = new Replica<int>(Harness.Defaults(3), A, new Random(1));
        var fx = new List<Effect<int>>();
        var noDeps = new EntryValue<int>(false, -1, [new Command<int>(new CommandId(9, 1), 0)]);
        acceptor.Handle(Q, new Accept<int>(1, 2, new Ballot(0, Q), noDeps), 0, fx);   // Q.2 → none, via Accept only

        (bool Ok, long Dep) Ask(long slot, long dep)
        {
            fx.Clear();
            acceptor.Handle(P, new FastAccept<int>(0, slot, new Ballot(0, P), new EntryValue<int>(false, dep, [new Command<int>(new CommandId(1, slot + 1), 0)])), 0, fx);
            var reply = fx.OfType<SendEffect<int>>().Select(s => s.Message).OfType<FastAcceptReply<int>>().Single();
            return (reply.Ok, reply.Dep);
        }

        Assert.Equal((false, 2L), Ask(slot: 0, dep: 1));       // Q.2 (2 > 1) depends on nothing before P.0: conflict
        Assert.Equal((true, 2L), Ask(slot: 1, dep: 2));        // depends on Q.2 itself: compatible
        Assert.Equal((false, 2L), Ask(slot: 2, dep: -1));
    }

    [Fact]
    public void A_later_entry_of_the_other_log_that_depends_on_this_one_is_compatible()
    {
        var acceptor = new Replica<int>(Harness.Defaults(3), A, new Random(1));
        var fx = new List<Effect<int>>();
        acceptor.Handle(Q, new FastAccept<int>(1, 3, new Ballot(0, Q), new EntryValue<int>(false, 5, [new Command<int>(new CommandId(9, 1), 0)])), 0, fx);
        fx.Clear();
        acceptor.Handle(P, new FastAccept<int>(0, 4, new Ballot(0, P), new EntryValue<int>(false, 1, [new Command<int>(new CommandId(1, 1), 0)])), 0, fx);
        var reply = fx.OfType<SendEffect<int>>().Select(s => s.Message).OfType<FastAcceptReply<int>>().Single();
        Assert.True(reply.Ok);                                 // Q.3 depends on P.5 ≥ P.4
    }

    /// <summary>
    /// n = 5. Why an acceptor checks compatibility against the lowest dependency it ever accepted for an entry, not the
    /// one accepted most recently. Q.0 → none reaches only r3. P proposes P.0 → none; Q and r3 refuse it (they hold
    /// Q.0), so P takes the slow path with P.0 → 0 and accepts that itself (the Accept to the others is lost). If P now
    /// judged Q.0 against its latest dependency (0), it would accept Q.0 → none, and Q would commit Q.0 on the fast path
    /// with {Q, r3, P}. Meanwhile s1 and s2 fast-accept P.0 → none; P fails; Q takes P.0 over hearing {Q, s1, s2}:
    /// f = 2 fast-accepts → original P.0 → none. Both committed, incompatible (I2). Judging by the lowest dependency
    /// (-1), P refuses Q.0 and Q.0 ends up depending on P.0.
    /// </summary>
    [Fact]
    public void Compatibility_uses_the_lowest_dependency_ever_accepted_for_an_entry()
    {
        const int s1 = 2, s2 = 3, r3 = 4;
        var h = new Harness(Harness.Defaults(5));
        h.Submit(Q, client: 2, seq: 1);                                   // Q.0 → -1
        h.Deliver(e => e.About(1, 0) && e.Is<FastAccept<int>>() && e.To == r3);
        h.Deliver(e => e.About(1, 0) && e.Is<FastAcceptReply<int>>());
        h.Submit(P, client: 1, seq: 1);                                   // P.0 → -1
        h.Deliver(e => e.About(0, 0) && e.Is<FastAccept<int>>() && (e.To == Q || e.To == r3));
        h.Deliver(e => e.About(0, 0) && e.Is<FastAcceptReply<int>>());
        h.Advance(h.Options.FastPathWait + 1_000);                        // P: slow path, P.0 → 0
        Assert.Equal(1, h.Replicas[P].Counters.SlowPaths);
        h.Drop(e => e.About(0, 0) && e.Is<Accept<int>>());
        h.Deliver(e => e.About(1, 0) && e.Is<FastAccept<int>>() && e.To == P);
        h.Deliver(e => e.About(1, 0) && e.Is<FastAcceptReply<int>>() && e.From == P);
        h.Deliver(e => e.About(0, 0) && e.Is<FastAccept<int>>() && (e.To == s1 || e.To == s2));
        h.Crash(P);
        h.StartRecovery(Q, log: 0, slot: 0);
        Assert.True(h.Run(2_000_000, () => h.Replicas[Q].TryGetCommitted(0, 0, out _) && h.Replicas[Q].TryGetCommitted(1, 0, out _),
            e => e.To != r3 && e.From != r3 || !e.About(0, 0)));
        h.ThrowIfBroken();
    }

    /// <summary>n = 5: with conflicting answers the slow path takes the (f+1)-th smallest suggested dependency.</summary>
    [Fact]
    public void Slow_path_takes_the_f_plus_first_smallest_dependency()
    {
        var h = new Harness(Harness.Defaults(5));
        h.Submit(P, client: 1, seq: 1);                        // P.0 → -1 (the pilot's own vote: OK, -1)
        var p = h.Replicas[P];
        void Reply(int from, bool ok, long dep)
        {
            var fx = new List<Effect<int>>();
            p.Handle(from, new FastAcceptReply<int>(0, 0, new Ballot(0, P), ok, dep), h.Now, fx);
            h.Pending.AddRange(fx.OfType<BroadcastEffect<int>>().SelectMany(b => Enumerable.Range(1, 4).Select(to => new Harness.Envelope(P, to, b.Message, 0))));
        }

        h.Drop(_ => true);
        Reply(1, false, 4);
        Reply(2, false, 2);
        Reply(3, true, -1);
        Assert.Empty(h.Pending);                               // a fast quorum is still possible: wait
        Reply(4, false, 7);                                    // now impossible: sorted -1, -1, 2, 4, 7 → third is 2
        var accept = h.Pending.Select(e => e.Message).OfType<Accept<int>>().First();
        Assert.Equal(2, accept.Value.Dep);
        Assert.Equal(1, p.Counters.SlowPaths);
    }

    /// <summary>Both pilots order the same command; every replica executes it once, in the same place.</summary>
    [Fact]
    public void A_command_in_both_logs_executes_once()
    {
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);
        h.Submit(Q, client: 1, seq: 1);
        h.Submit(P, client: 2, seq: 1);
        h.Submit(Q, client: 2, seq: 1);
        Assert.True(h.Run(200_000, () => h.Replicas.All(r => r.ExecutedThrough(0) == 2 && r.ExecutedThrough(1) == 2)));
        for (var r = 0; r < 3; r++)
        {
            Assert.Equal(2, h.Executed.Count(x => x.Replica == r));
        }
    }

    /// <summary>
    /// Two crossing proposals P.0 and Q.0 each take the slow path and end up depending on each other: a cycle, which
    /// every replica breaks the same way, pilot (log 0) first.
    /// </summary>
    [Fact]
    public void A_dependency_cycle_executes_the_pilots_entry_first()
    {
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);                        // P.0 → -1
        h.Submit(Q, client: 2, seq: 1);                        // Q.0 → -1
        h.Deliver(e => e.To != A && e.From != A);              // each pilot refuses the other's (suggesting 0)
        h.Advance(h.Options.FastPathWait + 1_000);             // A is silent: both take the slow path with dep 0
        Assert.True(h.Run(500_000, () => h.Replicas.All(r => r.ExecutedThrough(0) == 1 && r.ExecutedThrough(1) == 1)));
        Assert.Equal(0, h.Committed(0, 0)!.Dep);
        Assert.Equal(0, h.Committed(1, 0)!.Dep);
        for (var r = 0; r < 3; r++)
        {
            Assert.Equal([new CommandId(1, 1), new CommandId(2, 1)], h.Executed.Where(x => x.Replica == r).Select(x => x.Command));
        }

        Assert.True(h.Replicas.Sum(r => r.Counters.CycleBreaks) >= 3);
    }

    /// <summary>
    /// Q's entry Q.1 depends on P.0, which is not committed, but whose only command Q already executed (from Q.0):
    /// null-dependency elimination lets Q execute Q.1 at once instead of taking P.0 over.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Null_dependency_elimination_skips_an_uncommitted_entry_whose_commands_ran(bool enabled)
    {
        var options = Harness.Defaults(3);
        options = new CopilotOptions
        {
            ReplicaCount = 3,
            HeartbeatInterval = options.HeartbeatInterval,
            ElectionTimeout = options.ElectionTimeout,
            TakeoverTimeout = options.TakeoverTimeout,
            PingPongWait = 0,
            NullDependencyElimination = enabled,
        };
        var h = new Harness(options);
        h.Submit(Q, client: 1, seq: 1);                        // Q.0 = [c1#1] → -1, committed with A
        h.Deliver(e => e.About(1, 0) && e.To != P && e.From != P);
        Assert.True(h.Replicas[Q].HasExecuted(new CommandId(1, 1)));
        h.Submit(P, client: 1, seq: 1);                        // P.0 = [c1#1]: the slow pilot's copy, reaches Q only
        h.Deliver(e => e.About(0, 0) && e.Is<FastAccept<int>>() && e.To == Q);
        h.Drop(e => e.About(0, 0));
        h.Submit(Q, client: 2, seq: 1);                        // Q.1 = [c2#1] → 0
        h.Deliver(e => e.About(1, 1) && e.To != P && e.From != P);
        Assert.Equal(0, h.Committed(1, 1)!.Dep);
        Assert.Equal(enabled, h.Replicas[Q].HasExecuted(new CommandId(2, 1)));
        Assert.Equal(enabled ? 1 : 0, h.Replicas[Q].Counters.NullDependencySkips);
    }

    [Fact]
    public void A_restarted_replica_keeps_its_promises_and_accepted_entries()
    {
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);
        h.Deliver(e => e.About(0, 0) && e.Is<FastAccept<int>>() && e.To == A);
        h.StartRecovery(Q, log: 1, slot: 5);
        h.Deliver(e => e.About(1, 5) && e.Is<Prepare<int>>() && e.To == A);
        var before0 = h.Replicas[A].InspectSlot(0, 0);
        h.Crash(A);
        h.Restart(A);
        var after0 = h.Replicas[A].InspectSlot(0, 0);
        Assert.Equal(before0.Status, after0.Status);
        Assert.Equal(before0.AcceptedBallot, after0.AcceptedBallot);
        Assert.True(before0.Value!.SameAs(after0.Value!));

        // The promise to Q's recovery ballot survives: an older ballot is refused.
        var fx = new List<Effect<int>>();
        h.Replicas[A].Handle(P, new Prepare<int>(1, 5, new Ballot(0, P), null), h.Now, fx);
        Assert.Single(fx.OfType<SendEffect<int>>().Select(s => s.Message).OfType<Reject<int>>());
    }

    [Fact]
    public void A_replica_that_was_down_catches_up_on_what_it_missed()
    {
        var h = new Harness(Harness.Defaults(3));
        h.Crash(A);
        for (var i = 1; i <= 5; i++)
        {
            h.Submit(P, client: 1, seq: i);
            h.Submit(Q, client: 1, seq: i);
            Assert.True(h.Run(100_000, () => h.Replicas[P].HasExecuted(new CommandId(1, i)) && h.Replicas[Q].HasExecuted(new CommandId(1, i))));
        }

        h.Run(100_000, () => h.Pending.Count == 0);
        h.Restart(A);
        Assert.True(h.Run(500_000, () => h.Replicas[A].HasExecuted(new CommandId(1, 5))));
        Assert.Equal(h.Replicas[P].CommittedPrefix(0), h.Replicas[A].CommittedPrefix(0));
    }

    [Fact]
    public void Multi_paxos_mode_orders_everything_in_log_0_with_one_proposer()
    {
        var h = new Harness(Harness.Defaults(3, ReplicationMode.MultiPaxos));
        Assert.True(h.Replicas[P].IsActivePilot(0));
        Assert.False(h.Replicas[Q].IsActivePilot(1));
        for (var i = 1; i <= 4; i++)
        {
            h.Submit(P, client: i, seq: 1);
            h.Submit(Q, client: i, seq: 1);                    // ignored: Q is no pilot in this mode
        }

        Assert.True(h.Run(500_000, () => h.Replicas.All(r => r.HasExecuted(new CommandId(4, 1)))));
        Assert.Equal(-1, h.Replicas[A].MaxKnownSlot(1));
        Assert.Equal(0, h.Replicas[P].Counters.FastCommits);
        Assert.All(h.Commits, c => Assert.Equal(0, c.Log));
    }

    [Fact]
    public void A_resubmitted_command_that_already_ran_is_answered_at_once()
    {
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);
        h.Submit(Q, client: 1, seq: 1);
        Assert.True(h.Run(200_000, () => h.Replicas[P].HasExecuted(new CommandId(1, 1))));
        var fx = new List<Effect<int>>();
        h.Replicas[P].Submit(new Command<int>(new CommandId(1, 1), 0), h.Now, fx);
        Assert.Contains(fx, e => e is ReplyEffect<int> { Command: { Client: 1, Seq: 1 } });
        Assert.DoesNotContain(fx, e => e is BroadcastEffect<int> { Message: FastAccept<int> });
    }
}
