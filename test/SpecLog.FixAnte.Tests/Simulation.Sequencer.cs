namespace SpecLog.FixAnte.Tests;

/// <summary>The sequencer's side of a simulation: applying reports (with the safety checks on each commit) and broadcasting notices.</summary>
internal sealed partial class Simulation
{
    private void SequencerReceive(ShardReport report)
    {
        var o = new SequencerOutput();
        var before = _seq.CommittedCut;
        var shardsBefore = _seq.ShardCount;
        var windowsBefore = _seq.History.Count;
        _seq.Apply(report, o);
        Applied.Add((report, Describe(o)));
        if (report.Control != ShardControl.None)
        {
            Check(o.ControlRefused is null, () => $"{report.Control} of shard {report.Shard} refused: {o.ControlRefused}");
            var host = _shards[report.Shard];
            host.ChangeWindow ??= windowsBefore;
            if (_seq.ShardCount > shardsBefore)
            {
                host.JoinedAt = _now;
                StartShard();
            }
        }

        Check(_seq.CommittedCut >= before, () => "committed cut went backwards");
        if (o.CommitAdvanced)
        {
            Commits.Add((_now, _seq.CommittedCut));
            if (Measure is null)
            {
                for (var x = 0; x < Started; x++)
                {
                    var committedSlots = _seq.History.SlotsBeforeCut(x, _seq.CommittedCut);
                    var queue = _shards[x].Uncommitted;
                    while (queue.TryPeek(out var r) && r.Slot < committedSlots)
                    {
                        queue.Dequeue();
                        _commitLatencies.Add(_now - r.Micros);
                        if (x != _load.SlowShard)
                        {
                            _healthyCommitLatencies.Add(_now - r.Micros);
                        }
                    }
                }
            }
        }

        if (o.LagFixes.Count > 0)
        {
            var lead = Enumerable.Range(0, Started).Max(_seq.CompletedCutOf);
            LagFixLog.AddRange(o.LagFixes.Select(l => (_now, l.Shard, l.TargetCut, lead)));
        }

        if (!o.Duplicate && report.FixedLag && _unackedLagFixSince[report.Shard] is { } since)
        {
            _maxLagFixAckMicros = Math.Max(_maxLagFixAckMicros, _now - since);
            _lagFixesUnackedOver50Ms += _now - since > 50_000 ? 1 : 0;
            _unackedLagFixSince[report.Shard] = null;
        }

        if (o.WaitingChanged && _seq.AnyWaiting)
        {
            _lastCommitAdvance = _now; // an idle (quiescent) log commits nothing; stalls count from when somebody waits
        }

        if (o.CommitAdvanced)
        {
            _maxCommitGap = Math.Max(_maxCommitGap, _now - _lastCommitAdvance);
            _lastCommitAdvance = _now;

            // Safety: every committed slot is durable at its shard.
            for (var x = 0; x < Started; x++)
            {
                // (A failed shard's void slots are no-ops it need not hold.)
                var committedSlots = _seq.History.SlotsBeforeCut(x, _seq.CommittedCut);
                var durable = _shards[x].Core.DurableSlots;
                var shard = x;
                Check(committedSlots <= durable || _seq.History.SkipVoid(x, durable) >= committedSlots, () => $"cut {_seq.CommittedCut} committed with shard {shard} holding {_shards[shard].Core.DurableSlots} of {committedSlots} slots");
            }
        }

        if (o.CommitAdvanced || o.NewWindows.Count > 0 || o.WaitingChanged)
        {
            Broadcast();
        }

        if (_measureStart is not null && Measure is null && o.LagFixes.Count > 0)
        {
            var leader = LagFixLog[^1].Leader;
            _measuredLagFixes += o.LagFixes.Count;
            _measuredLagFixesToLeader += o.LagFixes.Count(l => l.TargetCut == leader);
        }

        foreach (var (shard, target) in o.LagFixes)
        {
            _lagFixesSent++;
            _unackedLagFixSince[shard] ??= _now;
            At(NetDelay(), () =>
            {
                if (_shards[shard].Dead)
                {
                    return;
                }

                var n = _shards[shard].Core.NoOpsForLagFix(target);
                if (n > 0)
                {
                    _lagFixNoOpSlots += n;
                    AssignNoOps(shard, n);
                    _shards[shard].LagFillEnd = _shards[shard].Core.AssignedSlots;
                    _shards[shard].LagFillDurableAt = null;
                }
                else
                {
                    _lagFixesWithoutFill++;
                }

                Pump(shard);
            });
        }
    }

    private void Broadcast()
    {
        var windows = _seq.History.Windows.ToArray();
        var cut = _seq.CommittedCut;
        var waiting = _seq.AnyWaiting;
        for (var s = 0; s < Started; s++)
        {
            var shard = s;
            _noticesSent++;
            At(NetDelay(), () =>
            {
                var core = _shards[shard].Core;
                if (_shards[shard].Dead)
                {
                    return;
                }

                core.OnCommitted(cut, windows, _now, waiting);
                Check(core.CommittedSlots <= core.DurableSlots || core.History.SkipVoid(shard, core.DurableSlots) >= core.CommittedSlots, () => $"shard {shard}: committed slots {core.CommittedSlots} beyond durable {core.DurableSlots} (and not void)");
                AckBatches(shard);
                Pump(shard);
            });
        }
    }
}
