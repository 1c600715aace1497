namespace SpecLog.Server.Hosting;

/// <summary>
/// Keeps one replication mode per data directory. The single sequencer keeps its windows in <c>sequencer/</c>, the
/// replicated ordering layer in <c>sequencer-replica-N/</c>; the shards' positions depend on those windows, so a log
/// started in one mode must never be reopened in the other (it would decide different windows for the same data).
/// </summary>
public static class OrderingModeGuard
{
    /// <summary>
    /// The replication mode whose ordering data <paramref name="dataDirectory"/> holds: <see cref="SequencerReplication.Single"/>
    /// for the single sequencer's window log, <see cref="SequencerReplication.Copilot"/> for replica logs (a replica
    /// written in Multi-Paxos mode refuses Copilot with its own message), or null for a new or empty directory.
    /// </summary>
    public static SequencerReplication? Detect(string dataDirectory)
    {
        if (!Directory.Exists(dataDirectory))
        {
            return null;
        }

        if (HasFiles(Path.Combine(dataDirectory, "sequencer")))
        {
            return SequencerReplication.Single;
        }

        return Directory.GetDirectories(dataDirectory, "sequencer-replica-*").Any(HasFiles) ? SequencerReplication.Copilot : null;
    }

    /// <summary>Throws a clear error when <paramref name="dataDirectory"/> holds the other mode's ordering data.</summary>
    public static void Check(string dataDirectory, SequencerReplication mode)
    {
        if (!Directory.Exists(dataDirectory))
        {
            return;
        }

        var single = Path.Combine(dataDirectory, "sequencer");
        var replicated = Directory.GetDirectories(dataDirectory, "sequencer-replica-*");
        var other = mode == SequencerReplication.Single
            ? replicated.FirstOrDefault(HasFiles)
            : (HasFiles(single) ? single : null);
        if (other is not null)
        {
            var was = mode == SequencerReplication.Single ? "a replicated ordering layer (Copilot or MultiPaxos)" : "the single sequencer (Single)";
            throw new InvalidOperationException(
                $"The data directory {dataDirectory} was written with {was} ({other} exists), but SpecLog:Replication:Mode is now {mode}. "
                + "The replication mode is fixed for a data directory: start with the mode it was created with, or use a new data directory.");
        }
    }

    private static bool HasFiles(string directory) =>
        Directory.Exists(directory) && Directory.EnumerateFiles(directory).Any(f => Path.GetFileName(f) != "LOCK");
}
