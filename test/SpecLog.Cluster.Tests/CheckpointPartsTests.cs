using SpecLog.Server.Ordering;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// Reassembling an ordering replica's multi-part checkpoint at recovery. A nemesis run found a replica that could not
/// restart: its log began with part 1 of 2 of an older checkpoint whose part 0 lay in a segment deleted below the newer
/// checkpoint (the parts straddled a segment boundary), and recovery refused the orphan part.
/// </summary>
public sealed class CheckpointPartsTests
{
    [Fact]
    public void The_tail_of_a_checkpoint_whose_head_was_deleted_is_skipped_at_the_log_start_and_the_next_checkpoint_is_whole()
    {
        var parts = new CheckpointParts(1);
        Assert.Null(parts.Add(7996, 1, 2, [9, 9])); // the older checkpoint's last part, its first deleted with its segment
        Assert.Equal(1, parts.SkippedAtStart);
        parts.OtherEntry(); // records written after it
        Assert.Null(parts.Add(8100, 0, 3, [1, 2]));
        Assert.Null(parts.Add(8101, 1, 3, [3]));
        Assert.Equal([1, 2, 3, 4], parts.Add(8102, 2, 3, [4]));
    }

    [Fact]
    public void A_part_out_of_order_after_the_log_start_is_refused()
    {
        var parts = new CheckpointParts(1);
        parts.OtherEntry();
        var e = Assert.Throws<InvalidDataException>(() => parts.Add(50, 1, 2, [1]));
        Assert.Contains("does not follow part -1", e.Message);

        parts = new CheckpointParts(1);
        Assert.Null(parts.Add(10, 0, 3, [1]));
        Assert.Throws<InvalidDataException>(() => parts.Add(11, 2, 3, [3])); // part 1 missing in the middle
    }

    [Fact]
    public void A_torn_checkpoint_counts_for_nothing_and_what_follows_it_reads_on()
    {
        var parts = new CheckpointParts(1);
        Assert.Null(parts.Add(10, 0, 2, [1])); // the crash tore part 1 off; the replica wrote records after restarting
        parts.OtherEntry();
        Assert.Throws<InvalidDataException>(() => parts.Add(20, 1, 2, [2])); // a stray continuation later is damage
        Assert.Equal([5], new CheckpointParts(1).Add(30, 0, 1, [5]));
        Assert.Throws<InvalidDataException>(() => new CheckpointParts(1).Add(31, 2, 2, [5]));
    }
}
