namespace SpecLog.Copilot.Tests;

/// <summary>
/// One hand-built schedule per defect the design brief lists for the authors' Go code. Each was checked by planting
/// the defect in the core: the test fails with the defect and passes without it.
/// </summary>
public sealed class DefectScenarioTests
{
    private const int P = 0;
    private const int Q = 1;

    /// <summary>
    /// n = 3. The pilot P proposes P.0 → none, which only P itself accepts; the copilot Q meanwhile fast-commits
    /// Q.0 → none (they conflict) and later Q.1 → P.0, so Q's execution waits on P.0 and Q takes it over. Q hears from
    /// itself (it rejected P.0) and from the slow P. Counting P's own vote as a fast-accept would give f = 1 vote and
    /// re-propose P.0 → none, which contradicts the committed Q.0 (I2). Not counting it, P.0 becomes a no-op.
    /// </summary>
    [Fact]
    public void Recovery_does_not_count_the_slow_pilots_own_vote()
    {
        const int a = 2;
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);                       // P.0 = [c1#1] -> -1, FastAccept held
        h.Submit(Q, client: 2, seq: 1);                       // Q.0 = [c2#1] -> -1
        h.Deliver(e => e.About(1, 0) && e.To != P && e.From != P);
        Assert.Equal(-1, h.Committed(1, 0)!.Dep);             // fast path with A

        h.Deliver(e => e.About(0, 0) && e.Is<FastAccept<int>>() && e.To == Q); // Q rejects P.0 (conflicts with Q.0)
        h.Submit(Q, client: 3, seq: 1);                       // Q.1 = [c3#1] -> 0
        h.Deliver(e => e.About(1, 1) && e.To != P && e.From != P);
        Assert.Equal(0, h.Committed(1, 1)!.Dep);

        // Q's execution now waits on P.0; after the takeover timeout Q prepares it. Only P (slow) answers.
        h.Advance(h.Options.TakeoverTimeout + 2_000);
        Assert.True(h.Deliver(e => e.About(0, 0) && e.Is<Prepare<int>>() && e.From == Q && e.To == P) > 0);
        h.Deliver(e => e.About(0, 0) && e.Is<PrepareReply<int>>() && e.To == Q);
        h.ThrowIfBroken();

        // Let everything settle.
        h.Run(2_000_000, () => h.Committed(0, 0) is not null && Enumerable.Range(0, 3).All(r => h.Replicas[r].ExecutedThrough(1) == 2));
        Assert.True(h.Committed(0, 0)!.IsNoOp, $"P.0 should be a no-op, got {h.Committed(0, 0)}");
        Assert.True(h.Replicas[Q].Counters.Takeovers > 0);
        Assert.True(h.Replicas[a].TryGetCommitted(0, 0, out _));
    }

    /// <summary>
    /// n = 3. P proposes P.0 = [c1#1]; before any replica but P sees it, Q takes it over and commits a no-op, then
    /// crashes. P, preempted, recovers its own entry: it must adopt the accepted no-op. Re-proposing its own stale
    /// batch instead would commit a second value for P.0 (I1).
    /// </summary>
    [Fact]
    public void A_recovery_proposes_the_adopted_value_not_its_stale_batch()
    {
        const int a = 2;
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);
        h.Drop(e => e.About(0, 0));                           // P's FastAccepts are lost for now

        h.StartRecovery(Q, log: 0, slot: 0);
        h.Deliver(e => e.About(0, 0) && e.To != P && e.From != P && !e.Is<Commit<int>>());
        Assert.True(h.Committed(0, 0)!.IsNoOp);              // Q committed a no-op with A (A has only accepted it)
        h.Drop(e => e.From == Q);
        h.Crash(Q);

        // P retransmits, is refused (A promised Q's ballot), backs off, then recovers P.0 itself.
        h.Run(2_000_000, () => h.Replicas[P].TryGetCommitted(0, 0, out _) && h.Replicas[a].TryGetCommitted(0, 0, out _));
        Assert.True(h.Replicas[P].TryGetCommitted(0, 0, out var atP) && atP.IsNoOp, "P must adopt the accepted no-op");
        Assert.True(h.Replicas[P].Counters.RecoveredAccepted > 0, "P must have recovered its entry itself");
        h.ThrowIfBroken();
    }

    /// <summary>
    /// n = 3. P proposes P.0 and P.1; only P.1 reaches replica A and commits. A must not execute P.1 before P.0 is
    /// committed and executed (own-log order, I5); once P.0 arrives both execute in order.
    /// </summary>
    [Fact]
    public void The_executor_never_runs_a_later_entry_before_an_earlier_one_commits()
    {
        const int a = 2;
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);                       // P.0
        h.Submit(P, client: 2, seq: 1);                       // P.1
        Assert.True(h.Deliver(e => e.About(0, 1) && (e.To == a || e.To == P)) > 0);
        Assert.NotNull(h.Committed(0, 1));
        h.ThrowIfBroken();
        Assert.Equal(0, h.Replicas[a].ExecutedThrough(0));
        Assert.DoesNotContain(h.Executed, x => x.Replica == a);

        h.Deliver(e => e.About(0, 0) && (e.To == a || e.To == P));
        h.ThrowIfBroken();
        Assert.Equal(2, h.Replicas[a].ExecutedThrough(0));
        Assert.Equal([new CommandId(1, 1), new CommandId(2, 1)], h.Executed.Where(x => x.Replica == a).Select(x => x.Command));
    }

    /// <summary>
    /// n = 5, the ambiguous middle, first way: P.0 committed on the fast path with {P, A, B}; then P and B crash and Q
    /// recovers P.0 hearing {Q, A, C}: one fast-accept besides P's — neither the "no-op" nor the "original" count rule
    /// applies. No entry of Q's log conflicts with P.0, so the original must be chosen (a no-op here breaks I1).
    /// </summary>
    [Fact]
    public void Ambiguous_recovery_keeps_a_value_that_was_fast_committed()
    {
        const int a = 2, b = 3, c = 4;
        var h = new Harness(Harness.Defaults(5));
        h.Submit(P, client: 1, seq: 1);
        h.Deliver(e => e.About(0, 0) && ((e.Is<FastAccept<int>>() && (e.To == a || e.To == b)) || (e.Is<FastAcceptReply<int>>() && e.To == P)));
        Assert.NotNull(h.Committed(0, 0));                    // fast quorum {P, A, B}; nobody else hears of the commit
        h.Drop(e => e.About(0, 0));
        h.Crash(P);
        h.Crash(b);

        h.StartRecovery(Q, log: 0, slot: 0);
        Assert.True(h.Run(1_000_000, () => h.Replicas[Q].TryGetCommitted(0, 0, out _)));
        Assert.False(h.Committed(0, 0)!.IsNoOp);
        Assert.True(h.Replicas[Q].Counters.Ambiguous > 0, "the schedule must reach the ambiguous case");
        Assert.True(h.Replicas[c].TryGetCommitted(0, 0, out _) || h.Run(1_000_000, () => h.Replicas[c].TryGetCommitted(0, 0, out _)));
    }

    /// <summary>
    /// n = 5, the ambiguous middle, second way: P.0 → none reached only A (not committed) while Q.0 → none committed on
    /// the fast path with {Q, B, C}; the two conflict. Q recovers P.0 hearing {Q, A, B}: one fast-accept besides P's.
    /// The conflicting Q.0 is committed, so P.0 cannot have been committed: it must become a no-op (the original
    /// would break I2).
    /// </summary>
    [Fact]
    public void Ambiguous_recovery_drops_a_value_that_conflicts_with_a_committed_entry()
    {
        const int a = 2, b = 3, c = 4;
        var h = new Harness(Harness.Defaults(5));
        h.Submit(P, client: 1, seq: 1);                       // P.0 = [c1#1] -> -1
        h.Deliver(e => e.About(0, 0) && e.Is<FastAccept<int>>() && e.To == a);
        h.Drop(e => e.About(0, 0));
        h.Submit(Q, client: 2, seq: 1);                       // Q.0 = [c2#1] -> -1
        h.Deliver(e => e.About(1, 0) && (e.To == b || e.To == c || e.To == Q));
        Assert.Equal(-1, h.Committed(1, 0)!.Dep);
        h.Drop(e => e.About(1, 0));
        h.Crash(P);

        h.StartRecovery(Q, log: 0, slot: 0);
        Assert.True(h.Run(1_000_000, () => h.Replicas[Q].TryGetCommitted(0, 0, out _), e => e.To != c && e.From != c));
        Assert.True(h.Committed(0, 0)!.IsNoOp, $"P.0 must become a no-op, got {h.Committed(0, 0)}");
        Assert.True(h.Replicas[Q].Counters.Ambiguous > 0, "the schedule must reach the ambiguous case");
    }

    /// <summary>
    /// n = 5. The owner of P.0 is gone and two replicas take P.0 over at once on an adversarial network that always
    /// delivers a Prepare before anything else: each new Prepare preempts the other's Accept. Retrying at once, they
    /// duel forever; randomised exponential backoff lets one finish.
    /// </summary>
    [Fact]
    public void Duelling_takeovers_are_resolved_by_backoff()
    {
        const int a = 2, b = 3;
        var h = new Harness(Harness.Defaults(5));
        h.Submit(P, client: 1, seq: 1);
        h.Deliver(e => e.About(0, 0) && e.Is<FastAccept<int>>() && (e.To == a || e.To == b));
        h.Drop(e => e.About(0, 0));
        h.Crash(P);

        h.StartRecovery(Q, log: 0, slot: 0);
        h.StartRecovery(a, log: 0, slot: 0);
        static int PreparesFirst(List<Harness.Envelope> list)
        {
            var i = list.FindIndex(e => e.Is<Prepare<int>>());
            return i >= 0 ? i : 0;
        }

        var done = h.Run(3_000_000, () => h.Replicas[Q].TryGetCommitted(0, 0, out _) && h.Replicas[a].TryGetCommitted(0, 0, out _), pick: PreparesFirst);
        Assert.True(done, "the duel never ended");
        Assert.True(h.Replicas[Q].Counters.Preemptions + h.Replicas[a].Counters.Preemptions > 0, "the schedule must make them duel");
    }

    /// <summary>
    /// n = 3. Log 0 commits a few entries, the last one known only to P and A; P crashes. A is elected pilot of log 0
    /// and recovers it: every committed entry keeps its value (a view change must not wipe the log), while Q keeps
    /// committing in log 1 on the fast path during the view change; afterwards A commits new entries in log 0.
    /// </summary>
    [Fact]
    public void A_view_change_keeps_every_committed_entry_while_the_other_log_keeps_committing()
    {
        const int a = 2;
        var h = new Harness(Harness.Defaults(3));
        for (var i = 1; i <= 3; i++)
        {
            h.Submit(P, client: 1, seq: i);
            h.Submit(Q, client: 1, seq: i);
            h.Run(50_000, () => h.Replicas.All(r => r.HasExecuted(new CommandId(1, i))));
        }

        var before = h.Replicas[P].CommittedPrefix(0);
        h.Submit(P, client: 2, seq: 1);                       // the last entry: committed by P with A only
        h.Deliver(e => e.Is<FastAccept<int>>() && e.From == P && e.To == a);
        h.Deliver(e => e.Is<FastAcceptReply<int>>() && e.To == P);
        Assert.NotNull(h.Committed(0, before));
        h.Drop(e => e.From == P);
        h.Crash(P);
        var crashedAt = h.Now;

        // Q keeps serving log 1 while log 0 elects a new pilot.
        var seq = 1L;
        var won = h.Run(2_000_000, () =>
        {
            if (h.Now > crashedAt + 10_000 * seq)
            {
                h.Submit(Q, client: 3, seq: seq++);
            }

            return h.Replicas[a].IsActivePilot(0);
        });
        Assert.True(won, "no new pilot for log 0");
        var activatedAt = h.Now;
        Assert.Contains(h.Commits, x => x.Log == 1 && x.Replica == Q && x.At > crashedAt && x.At < activatedAt);
        for (var slot = 0L; slot <= before; slot++)
        {
            Assert.True(h.Replicas[a].TryGetCommitted(0, slot, out var kept), $"entry {slot} lost");
            Assert.True(kept.SameAs(h.Committed(0, slot)!));
        }

        Assert.False(h.Committed(0, before)!.IsNoOp);

        h.Submit(a, client: 4, seq: 1);
        h.Submit(Q, client: 4, seq: 1);
        Assert.True(h.Run(1_000_000, () => h.Replicas[Q].HasExecuted(new CommandId(4, 1)) && h.Replicas[a].HasExecuted(new CommandId(4, 1))
            && h.Replicas[Q].HasExecuted(new CommandId(2, 1)) && h.Replicas[a].HasExecuted(new CommandId(2, 1))));
    }
    /// <summary>
    /// n = 3. Replica A hears nothing for longer than the election timeout (its process was paused) while P and Q keep
    /// piloting and hearing each other. A stands for both logs; P and Q refuse (their pilots are alive). A must fall back
    /// into the live views: believe P and Q pilot, and accept their entries again. Seen in the nemesis run: a candidate
    /// that promised its own ballot before anyone else did stayed promised to a view that never formed, deaf to the live
    /// pilots' heartbeats (lower ballots), and named itself pilot of both logs to every shard that asked it, so that
    /// those shards' reports went nowhere.
    /// </summary>
    [Fact]
    public void A_refused_candidate_rejoins_the_live_views()
    {
        const int a = 2;
        var h = new Harness(Harness.Defaults(3));
        h.Submit(P, client: 1, seq: 1);
        h.Submit(Q, client: 1, seq: 2);
        Assert.True(h.Run(200_000, () => h.Replicas.All(r => r.HasExecuted(new CommandId(1, 2)))));

        // A is cut off (paused) until it stood for both logs; its view requests wait in the network.
        bool WithoutA(Harness.Envelope e) => e.From != a && e.To != a;
        h.Run(3 * h.Options.ElectionTimeout, () => h.Replicas[a].Counters.Candidacies >= 2, deliverable: WithoutA);
        Assert.True(h.Replicas[a].Counters.Candidacies >= 2, "the schedule must make A stand for both logs");

        // A resumes. P and Q still hear each other, so they refuse; A must believe them again and take part.
        h.Run(4 * h.Options.ElectionTimeout);
        Assert.True(h.Replicas[P].IsActivePilot(0) && h.Replicas[Q].IsActivePilot(1), "the live pilots were deposed");
        Assert.Equal(P, h.Replicas[a].BelievedPilot(0));
        Assert.Equal(Q, h.Replicas[a].BelievedPilot(1));

        var fastBefore = h.Replicas[P].Counters.FastCommits;
        h.Submit(P, client: 2, seq: 1);
        Assert.True(h.Run(200_000, () => h.Replicas[a].HasExecuted(new CommandId(2, 1))));
        Assert.True(h.Replicas[P].Counters.FastCommits > fastBefore, "A did not accept the live pilot's entry (n = 3 needs all three on the fast path)");
    }
}
