namespace SpecLog.Copilot.Tests;

/// <summary>The simulated hosts' checkpoints, checked as they are taken.</summary>
internal sealed partial class Simulation
{
    /// <summary>
    /// Replaces replica <paramref name="r"/>'s records with a checkpoint and snapshots its executed sequence, after
    /// checking the checkpoint: the snapshot stands at its heads with its high-water marks; a replica rebuilt from it
    /// gives the same checkpoint again (nothing lost or added), holds every entry above the base exactly as a replica
    /// rebuilt from the records it replaces, has the same views, known entries and committed prefixes as the live one,
    /// and resumes as pilot of the same logs as a restart from the replaced records would. Its records go through the
    /// I6 check like any other persisted record.
    /// </summary>
    private void Checkpoint(int r)
    {
        var host = _hosts[r];
        var live = host.Replica;
        var checkpoint = live.TakeCheckpoint();
        var header = checkpoint.Header;
        var snapshot = _checker.Snapshot(r);
        if (!ReferenceEquals(checkpoint.Records[0], header))
        {
            _checker.Fail($"replica {r}: the checkpoint's records do not begin with its header");
        }

        if (snapshot.NextEntry[0] != header.Head0 || snapshot.NextEntry[1] != header.Head1)
        {
            _checker.Fail($"replica {r}: checkpoint heads {header.Head0}/{header.Head1}, executed {snapshot.NextEntry[0]}/{snapshot.NextEntry[1]}");
        }

        if (snapshot.HighWater.Count != header.HighWater.Count
            || snapshot.HighWater.Any(kv => !header.HighWater.TryGetValue(kv.Key, out var seq) || seq != kv.Value))
        {
            _checker.Fail($"replica {r}: checkpoint high-water marks differ from the executed commands' marks");
        }

        var rebuilt = new Replica<int>(_options, r, new Random(0), checkpoint.Records);
        var reference = new Replica<int>(_options, r, new Random(0), host.Disk);
        for (var log = 0; log < 2; log++)
        {
            if (rebuilt.ExecutedThrough(log) != live.ExecutedThrough(log) || rebuilt.LogBase(log) != live.LogBase(log)
                || rebuilt.ViewBallot(log) != live.ViewBallot(log) || rebuilt.ViewBallot(log) != reference.ViewBallot(log)
                || rebuilt.MaxKnownSlot(log) != live.MaxKnownSlot(log) || rebuilt.MaxKnownSlot(log) != reference.MaxKnownSlot(log)
                || rebuilt.CommittedPrefix(log) != live.CommittedPrefix(log) || rebuilt.CommittedPrefix(log) != reference.CommittedPrefix(log)
                || rebuilt.IsActivePilot(log) != reference.IsActivePilot(log))
            {
                _checker.Fail($"replica {r}: rebuilt from its checkpoint, log {log} differs:\nlive {live.Describe()}\n"
                    + $"rebuilt {rebuilt.Describe()}\nfrom the replaced records {reference.Describe()}");
            }
        }

        var again = rebuilt.TakeCheckpoint().Records;
        if (again.Count != checkpoint.Records.Count || again.Where((record, i) => !SameRecord(record, checkpoint.Records[i])).Any())
        {
            _checker.Fail($"replica {r}: a replica rebuilt from a checkpoint does not give the same checkpoint");
        }

        var referenceSlots = reference.TakeCheckpoint().Records.OfType<SlotRecord<int>>().ToDictionary(s => (s.Log, s.Slot));
        foreach (var s in checkpoint.Records.OfType<SlotRecord<int>>())
        {
            if (!referenceSlots.Remove((s.Log, s.Slot), out var expected) || !SameRecord(s, expected))
            {
                _checker.Fail($"replica {r}: checkpointed entry {s.Log}.{s.Slot} differs from its replaced records");
            }
        }

        if (referenceSlots.Keys.Where(k => k.Slot >= live.LogBase(k.Log)).ToList() is [var missing, ..])
        {
            _checker.Fail($"replica {r}: entry {missing.Log}.{missing.Slot} is missing from the checkpoint");
        }

        foreach (var record in checkpoint.Records)
        {
            _checker.OnPersist(r, record);
        }

        host.Disk.Clear();
        host.Disk.AddRange(checkpoint.Records);
        host.Snapshot = snapshot;
        _checkpoints++;
    }

    private static bool SameRecord(PersistRecord<int> a, PersistRecord<int> b) => (a, b) switch
    {
        (SlotRecord<int> x, SlotRecord<int> y) => x with { Value = null } == y with { Value = null }
            && (x.Value is null ? y.Value is null : y.Value is not null && x.Value.SameAs(y.Value)),
        (CheckpointRecord<int> x, CheckpointRecord<int> y) => x with { HighWater = y.HighWater } == y
            && x.HighWater.Count == y.HighWater.Count && x.HighWater.All(kv => y.HighWater.TryGetValue(kv.Key, out var v) && v == kv.Value),
        _ => a == b,
    };
}
