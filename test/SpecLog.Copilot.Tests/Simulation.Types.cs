namespace SpecLog.Copilot.Tests;

/// <summary>The simulation's hosts, clients and events.</summary>
internal sealed partial class Simulation
{
    private sealed class Host(Replica<int> replica)
    {
        public Replica<int> Replica { get; set; } = replica;

        public List<PersistRecord<int>> Disk { get; } = [];

        /// <summary>The executed sequence snapshotted with the checkpoint the disk begins with, if it does.</summary>
        public ExecutionSnapshot? Snapshot { get; set; }

        public bool Up { get; set; } = true;

        public long Extra { get; set; }

        public long TickAt { get; set; } = long.MaxValue;

        /// <summary>Incremented when the host fences its lost incarnation for a rebuild: messages of older lives are dropped.</summary>
        public int Life { get; set; }

        /// <summary>Where a disk loss stands: none, waiting for every other replica to answer the probe, or waiting for the transfer.</summary>
        public RebuildStage Rebuild { get; set; }

        public bool RebuildRetryScheduled { get; set; }
    }

    private enum RebuildStage
    {
        None,
        WaitingForPeers,
        WaitingForTransfer,
    }

    private sealed class Client(int id, int total, int[] targets)
    {
        public int Id { get; } = id;

        public int Total { get; } = total;

        public int Completed { get; set; }

        public long NextSeq { get; set; } = 1;

        public CommandId? Outstanding { get; set; }

        public int Attempts { get; set; }

        public long SubmittedAt { get; set; }

        public int[] Targets { get; set; } = targets;

        public List<int> Repliers { get; } = [];
    }

    private abstract record Event;

    private sealed record Deliver(int From, int To, Message<int> Message, int FromLife) : Event;

    private sealed record TickEvent(int Replica) : Event;

    private sealed record SubmitEvent(int To, Command<int> Command) : Event;

    private sealed record ClientNext(int Client) : Event;

    private sealed record ClientTimeout(int Client, long Seq) : Event;

    private sealed record ClientReply(int Client, CommandId Command, int From) : Event;

    private sealed record Crash(int Replica, long Duration) : Event;

    private sealed record Restart(int Replica) : Event;

    private sealed record Slowdown(int Replica, long Extra, long Duration) : Event;

    private sealed record Partition(int Seed, long Duration) : Event;

    private sealed record Heal : Event;

    private sealed record RebuildRetry(int Replica) : Event;

    private sealed record RebuildTransfer(int Replica, RebuildFloor Floor) : Event;
}
