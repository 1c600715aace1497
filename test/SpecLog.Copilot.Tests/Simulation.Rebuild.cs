namespace SpecLog.Copilot.Tests;

/// <summary>
/// Disk loss: a crashed replica may come back with no records at all. Its host then rebuilds it as the core's README
/// prescribes: it fences the lost incarnation (messages it sent are dropped from then on) and probes every other
/// replica for its floor contribution, waiting (retrying later) while any of them is down; after a transfer delay it
/// takes a transfer checkpoint and the state-machine snapshot (the executed sequence) from a live donor, and constructs
/// the replica from the transfer and the floor. Decisions come from a third generator of the seed, so the network and
/// fault schedule stay as they were without disk loss.
/// </summary>
internal sealed partial class Simulation
{
    private int _rebuilds;
    private int _rebuildWaits;

    /// <summary>Replicas rebuilt after a disk loss.</summary>
    public int Rebuilds => _rebuilds;

    /// <summary>Rebuilds put off because some other replica was down when probed.</summary>
    public int RebuildWaits => _rebuildWaits;

    /// <summary>
    /// The model's bound on amnesia: one disk loss at a time, and none while a rebuilt replica still abstains. Two blank
    /// replicas would wait for each other's probe answers for ever; and a replica that loses its disk while another
    /// abstains leaves the entries under both floors with fewer than f + 1 voters when n = 3 (more than f acceptors have
    /// forgotten their votes there: nothing can decide them safely, so they stay open for ever).
    /// </summary>
    private bool DiskLossAllowed() =>
        _hosts.All(h => h.Rebuild == RebuildStage.None && !h.Replica.IsRebuilding(0) && !h.Replica.IsRebuilding(1));

    private void StartRebuild(int r)
    {
        var host = _hosts[r];
        if (Enumerable.Range(0, _n).Any(o => o != r && !_hosts[o].Up))
        {
            // Every other replica must answer the probe: wait until they are all up.
            _rebuildWaits++;
            if (!host.RebuildRetryScheduled)
            {
                host.RebuildRetryScheduled = true;
                Schedule(_now + 20_000, new RebuildRetry(r));
            }

            return;
        }

        host.Life++; // fence the lost incarnation before the probe
        var floor = RebuildFloor.Max(Enumerable.Range(0, _n).Where(o => o != r).Select(o => _hosts[o].Replica.FloorContribution(r)));
        Trace($"REBUILD PROBE {r}: floor {floor}");
        _checker.OnRebuildProbe(r, floor);
        host.Disk.Clear();
        host.Snapshot = null;
        host.Rebuild = RebuildStage.WaitingForTransfer;
        Schedule(_now + _diskRng.NextInt64(0, 20_001), new RebuildTransfer(r, floor));
    }

    private void CompleteRebuild(int r, RebuildFloor floor)
    {
        var host = _hosts[r];
        var donors = Enumerable.Range(0, _n).Where(o => o != r && _hosts[o].Up).ToArray();
        var donor = donors[_diskRng.Next(donors.Length)];
        var source = _hosts[donor].Replica;
        var snapshot = _checker.Snapshot(donor);
        if (_tweaks.RebuildWithoutAbstention)
        {
            floor = floor with { Known0 = -1, Known1 = -1 };
        }

        if (_tweaks.RebuildWithoutViewFloor)
        {
            floor = floor with { View0 = new Ballot(0, 0), View1 = new Ballot(0, 1), MaxRound = 0 };
        }

        IReadOnlyList<PersistRecord<int>> records;
        if (_tweaks.RebuildWithDonorVotes)
        {
            // Broken: the donor's every entry state (its votes) instead of its committed entries only.
            var full = source.TakeCheckpoint().Records.Where(x => x is CheckpointRecord<int> or SlotRecord<int>).ToList();
            records = [.. full, new RebuildRecord<int>(floor)];
        }
        else
        {
            records = Replica<int>.RebuildRecords(source.TakeTransferCheckpoint(), floor);
        }

        Trace($"REBUILD {r} from donor {donor}: {records.Count} records");
        AddCounters(host.Replica.Counters);
        host.Replica = NewReplica(r, new Random(_rng.Next()), records);
        host.Disk.AddRange(records);
        host.Snapshot = snapshot;
        host.Rebuild = RebuildStage.None;
        host.Up = true;
        host.TickAt = long.MaxValue;
        _down--;
        _rebuilds++;
        _checker.OnRebuild(r, snapshot);
        foreach (var record in records)
        {
            _checker.OnPersist(r, record);
        }

        for (var log = 0; log < 2; log++)
        {
            var replica = host.Replica;
            if (replica.ExecutedThrough(log) != snapshot.NextEntry[log] || replica.CommittedPrefix(log) < replica.ExecutedThrough(log)
                || replica.IsActivePilot(log) || replica.ViewBallot(log) < floor.View(log) || replica.MaxKnownSlot(log) < floor.Known(log))
            {
                _checker.Fail($"replica {r} rebuilt from donor {donor} stands wrong on log {log}: {replica.Describe()}\n"
                    + $"snapshot next entries {snapshot.NextEntry[0]}/{snapshot.NextEntry[1]}, floor {floor}");
            }
        }

        Step(r, (replica, fx) => replica.Start(_now, fx));
    }
}
