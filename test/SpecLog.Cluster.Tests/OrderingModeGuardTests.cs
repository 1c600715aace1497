using SpecLog.Server;
using SpecLog.Server.Hosting;

namespace SpecLog.Cluster.Tests;

/// <summary>A data directory keeps the replication mode it was created with.</summary>
public sealed class OrderingModeGuardTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "speclog-guard", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void A_new_or_empty_directory_accepts_any_mode()
    {
        OrderingModeGuard.Check(_dir, SequencerReplication.Single);
        Directory.CreateDirectory(Path.Combine(_dir, "sequencer"));
        File.WriteAllText(Path.Combine(_dir, "sequencer", "LOCK"), "");
        OrderingModeGuard.Check(_dir, SequencerReplication.Copilot); // only a lock file: nothing was written
    }

    [Theory]
    [InlineData(SequencerReplication.Copilot)]
    [InlineData(SequencerReplication.MultiPaxos)]
    public void Single_sequencer_data_refuses_a_replicated_ordering_layer_with_a_clear_message(SequencerReplication mode)
    {
        Directory.CreateDirectory(Path.Combine(_dir, "sequencer"));
        File.WriteAllText(Path.Combine(_dir, "sequencer", "00000000.seg"), "x");
        var e = Assert.Throws<InvalidOperationException>(() => OrderingModeGuard.Check(_dir, mode));
        Assert.Contains("single sequencer", e.Message, StringComparison.Ordinal);
        Assert.Contains($"now {mode}", e.Message, StringComparison.Ordinal);
        OrderingModeGuard.Check(_dir, SequencerReplication.Single);
    }

    [Fact]
    public void Replica_data_refuses_the_single_sequencer()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "sequencer-replica-1"));
        File.WriteAllText(Path.Combine(_dir, "sequencer-replica-1", "00000000.seg"), "x");
        var e = Assert.Throws<InvalidOperationException>(() => OrderingModeGuard.Check(_dir, SequencerReplication.Single));
        Assert.Contains("replicated ordering layer", e.Message, StringComparison.Ordinal);
        OrderingModeGuard.Check(_dir, SequencerReplication.Copilot);
    }

    [Fact]
    public void Detect_names_the_mode_a_directory_was_written_with_and_null_for_a_new_one()
    {
        Assert.Null(OrderingModeGuard.Detect(_dir));
        Directory.CreateDirectory(Path.Combine(_dir, "sequencer-replica-0"));
        File.WriteAllText(Path.Combine(_dir, "sequencer-replica-0", "LOCK"), "");
        Assert.Null(OrderingModeGuard.Detect(_dir)); // a lock file alone: nothing was written
        File.WriteAllText(Path.Combine(_dir, "sequencer-replica-0", "00000000.seg"), "x");
        Assert.Equal(SequencerReplication.Copilot, OrderingModeGuard.Detect(_dir));

        var single = Path.Combine(_dir, "other");
        Directory.CreateDirectory(Path.Combine(single, "sequencer"));
        File.WriteAllText(Path.Combine(single, "sequencer", "00000000.seg"), "x");
        Assert.Equal(SequencerReplication.Single, OrderingModeGuard.Detect(single));
    }
}
