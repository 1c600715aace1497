namespace SpecLog.Copilot.Tests;

/// <summary>
/// I7 (linearizable client history) must be able to fail: planted violations are caught, while the core's exactly-once
/// supersession (a newer command of a client stands in for an older one still in flight) is not a violation.
/// </summary>
public sealed class LinearizabilityCheckTests
{
    private static readonly CommandId A1 = new(1, 1);
    private static readonly CommandId A2 = new(1, 2);
    private static readonly CommandId B1 = new(2, 1);

    /// <summary>A replied at t=10, B first submitted at t=20, yet B executes before A.</summary>
    [Fact]
    public void A_command_submitted_after_a_reply_but_executed_before_the_replied_command_is_caught()
    {
        var violation = InvariantChecker.FindHistoryViolation(
            executed: [B1, A1],
            submittedAt: new Dictionary<CommandId, long> { [A1] = 0, [B1] = 20 },
            repliedAt: new Dictionary<CommandId, long> { [A1] = 10 });

        Assert.NotNull(violation);
        Assert.StartsWith("I7:", violation);
        Assert.Contains($"{B1}, first submitted later at t=20", violation);

        // The same commands in the other order, or B submitted before A's reply (concurrent), are fine.
        Assert.Null(InvariantChecker.FindHistoryViolation([A1, B1], new Dictionary<CommandId, long> { [A1] = 0, [B1] = 20 }, new Dictionary<CommandId, long> { [A1] = 10 }));
        Assert.Null(InvariantChecker.FindHistoryViolation([B1, A1], new Dictionary<CommandId, long> { [A1] = 0, [B1] = 5 }, new Dictionary<CommandId, long> { [A1] = 10 }));
    }

    /// <summary>The same planted history fed through the checker's effect hooks (B "executed" before it was submitted).</summary>
    [Fact]
    public void The_checker_reports_a_planted_history_violation_at_the_end_of_a_schedule()
    {
        var checker = new InvariantChecker(1);
        checker.OnSubmit(A1, 0);
        checker.OnCommitted(0, 0, 0, new EntryValue<int>(false, -1, [new Command<int>(B1, 0), new Command<int>(A1, 0)]));
        checker.OnExecute(0, B1, 0, 0);
        checker.OnExecute(0, A1, 0, 0);
        checker.OnEntryExecuted(0, 0, 0);
        checker.OnReply(0, A1, 10);
        checker.OnSubmit(B1, 20);
        Assert.Null(checker.Failure);                          // I1–I6 and the reply itself are fine

        checker.CheckHistory();
        Assert.NotNull(checker.Failure);
        Assert.StartsWith("I7:", checker.Failure);
    }

    [Fact]
    public void A_reply_before_the_command_executed_on_the_replying_replica_is_caught_at_the_effect()
    {
        var checker = new InvariantChecker(2);
        checker.OnSubmit(A1, 0);
        checker.OnCommitted(0, 0, 0, new EntryValue<int>(false, -1, [new Command<int>(A1, 0)]));
        checker.OnExecute(0, A1, 0, 0);                        // replica 0 executed it, replica 1 did not
        checker.OnReply(0, A1, 5);
        Assert.Null(checker.Failure);

        checker.OnReply(1, A1, 6);
        Assert.NotNull(checker.Failure);
        Assert.StartsWith("I7: replica 1 replied for c1#1", checker.Failure);
    }

    [Fact]
    public void A_reply_for_a_command_that_neither_executed_nor_was_superseded_is_caught()
    {
        var violation = InvariantChecker.FindHistoryViolation(
            [B1], new Dictionary<CommandId, long> { [A1] = 0, [B1] = 1 }, new Dictionary<CommandId, long> { [A1] = 10 });
        Assert.NotNull(violation);
        Assert.Contains("neither executed nor was superseded", violation);
    }

    /// <summary>
    /// A superseded command counts where the newer command of its client executed: no violation when that is before
    /// B, a violation when B (submitted after the reply) executed before it.
    /// </summary>
    [Fact]
    public void A_superseded_command_takes_effect_where_its_successor_executed()
    {
        var submitted = new Dictionary<CommandId, long> { [A1] = 0, [A2] = 1, [B1] = 20 };
        var replied = new Dictionary<CommandId, long> { [A1] = 10 };
        Assert.Null(InvariantChecker.FindHistoryViolation([A2, B1], submitted, replied));

        var violation = InvariantChecker.FindHistoryViolation([B1, A2], submitted, replied);
        Assert.NotNull(violation);
        Assert.Contains($"superseded by {A2}", violation);
    }

    /// <summary>
    /// What the core does with a superseded command: a stale resubmission of c1#1 after c1#2 executed is answered at
    /// once (the high-water mark covers it), c1#1 itself never executes, and the history stays linearizable.
    /// </summary>
    [Fact]
    public void The_core_answers_a_superseded_command_without_executing_it()
    {
        const int p = 0, q = 1;
        var h = new Harness(Harness.Defaults(3));
        h.Submit(q, client: 1, seq: 2);
        Assert.True(h.Run(200_000, () => h.Replicas.All(r => r.HasExecuted(A2))));

        h.Submit(p, client: 1, seq: 1);                        // stale: superseded by c1#2
        Assert.Contains(h.Replies, x => x.Replica == p && x.Command == A1);
        h.Submit(p, client: 2, seq: 1);
        h.Submit(q, client: 2, seq: 1);
        Assert.True(h.Run(200_000, () => h.Replicas.All(r => r.HasExecuted(B1))));

        Assert.DoesNotContain(h.Executed, x => x.Command == A1);
        h.ThrowIfBroken();
    }
}
