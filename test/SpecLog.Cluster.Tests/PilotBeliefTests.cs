using SpecLog.Server.Ordering.Copilot;

namespace SpecLog.Cluster.Tests;

/// <summary>How a silo's shards decide which ordering replicas pilot, from what the replicas say about themselves.</summary>
public sealed class PilotBeliefTests
{
    private static ReplicaStatus Status(int replica, int pilot0, int pilot1, bool active0 = false, bool active1 = false) =>
        new(replica, 1, "silo", "Copilot", 3, pilot0, pilot1, active0, active1, 0, 0, 0, 0, 0, 0, 0, 0, 0, DateTimeOffset.UnixEpoch, 0);

    [Fact]
    public void A_replica_standing_for_a_view_it_cannot_win_does_not_outvote_the_live_pilots()
    {
        // Replica 0 came back from a pause and stands for both logs (it names itself); 1 and 2 pilot and say so.
        var answers = new[] { Status(0, 0, 0), Status(1, 2, 1, active1: true), Status(2, 2, 1, active0: true) };
        Assert.Equal(2, CopilotOrderingLayer.PilotOf(answers, 0));
        Assert.Equal(1, CopilotOrderingLayer.PilotOf(answers, 1));

        // Only replica 0 answered so far: its word is all there is.
        Assert.Equal(0, CopilotOrderingLayer.PilotOf([answers[0]], 0));
    }

    [Fact]
    public void Without_an_active_pilot_the_most_believed_replica_is_taken()
    {
        var answers = new[] { Status(0, 1, 2), Status(1, 1, 2), Status(2, 0, 2) };
        Assert.Equal(1, CopilotOrderingLayer.PilotOf(answers, 0));
        Assert.Equal(2, CopilotOrderingLayer.PilotOf(answers, 1));
    }

    [Fact]
    public void A_replica_that_still_probes_its_peers_is_not_asked_who_pilots()
    {
        // Replica 2 started blank and probes (it believes in nobody: -1); the others' word decides.
        var probing = Status(2, -1, -1) with { Role = "Probing" };
        var answers = new[] { Status(0, 0, 1, active0: true), Status(1, 0, 1, active1: true), probing };
        Assert.Equal(0, CopilotOrderingLayer.PilotOf(answers, 0));
        Assert.Equal(1, CopilotOrderingLayer.PilotOf(answers, 1));

        // Only probing replicas answered (a new layer starting): nobody is named, and the caller keeps its belief.
        Assert.Equal(-1, CopilotOrderingLayer.PilotOf([probing, Status(0, -1, -1) with { Role = "Probing" }], 0));
    }

    [Fact]
    public void Of_two_replicas_that_say_they_pilot_a_log_the_one_the_others_believe_in_is_taken()
    {
        // Replica 0 was deposed while paused and does not know it yet; 1 won the view and 2 follows it.
        var answers = new[] { Status(0, 0, 2, active0: true), Status(1, 1, 2, active0: true), Status(2, 1, 2, active1: true) };
        Assert.Equal(1, CopilotOrderingLayer.PilotOf(answers, 0));
    }
}
