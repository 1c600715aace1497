namespace SpecLog.FixAnte.Tests;

/// <summary>What a finished simulation must satisfy: liveness, the same windows everywhere, speculative GSN = confirmed GSN, and the tiling of the committed prefix.</summary>
internal sealed partial class Simulation
{
    private string FinalChecks()
    {
        var history = _seq.History;
        var committedGsn = _seq.CommittedGsn;
        var records = _shards.Sum(h => h.AssignedRecords);
        Check(records > 1_000, () => $"only {records} records appended: the workload is too small to mean anything");

        // Records a departed shard took beyond its last slot never get a position (their appends fail): not in the log.
        var orphans = 0L;
        var voided = 0L;
        var misSpeculated = 0L;
        for (var s = 0; s < Started; s++)
        {
            var core = _shards[s].Core;
            var shard = s;
            if (_shards[s].Dead)
            {
                // A failed shard: what it held beyond the void's start is not in the log; what it delivered there was
                // mis-speculated. It never learned it departed.
                // (Scalog: no voids; what it held beyond its last cut is simply not in the log.)
                var gone = history.VoidOf(s) ?? (_mode == OrderingMode.Scalog ? (history.KnownSlots(s), history.KnownSlots(s), history.Count) : null);
                Check(gone is not null && history.Last!.HasDeparted(s), () => $"shard {shard} failed but no window settles it: {history.Last}");
                // (It may have reported durable slots beyond the last one a window gave it: those never got a position.)
                for (var k = Math.Min(gone!.Value.From, history.KnownSlots(s)); k < _shards[s].IsRecord.Count; k++)
                {
                    if (_shards[s].IsRecord[(int)k])
                    {
                        voided++;
                        misSpeculated += k < Math.Min(gone.Value.To, _shards[s].Delivered) ? 1 : 0;
                    }
                }

                continue;
            }

            Check(core.Departed == history.Last!.HasDeparted(s), () => $"shard {shard}: departed {core.Departed}, sequencer's last window {history.Last}");
            for (var k = 0; k < _shards[s].IsRecord.Count && history.VoidsOf(s).Count > 0; k++)
            {
                // A failed shard that rejoined: its records in void slots (what the sequencer had not heard of when it
                // failed, and what it held beyond its last slot) are not in the log.
                if (_shards[s].IsRecord[k] && history.IsVoid(s, k))
                {
                    voided++;
                    misSpeculated += _shards[s].SpecGsn[k] is not null && k < (history.FailureVoidOf(s)?.To ?? 0) ? 1 : 0;
                }
            }

            for (var k = core.FinalSlots; core.Departed && k < _shards[s].IsRecord.Count; k++)
            {
                orphans += _shards[s].IsRecord[(int)k] ? 1 : 0;
            }
        }

        // Shard-set changes take effect at exactly the next window decided after the sequencer took them, and never
        // touch a window decided before.
        var joinLatencies = new List<long>();
        for (var s = 0; s < Started; s++)
        {
            var host = _shards[s];
            var shard = s;
            if (host.ChangeWindow is not { } w || w >= history.Count)
            {
                continue;
            }

            if (host.JoinedAt is not null && _mode == OrderingMode.FixAnte)
            {
                Check(Enumerable.Range(0, w).All(i => history[i].QuotaOf(shard) == 0) && history[w].QuotaOf(shard) > 0,
                    () => $"shard {shard} joined when {w} windows were decided but its first quota is elsewhere: {string.Join("; ", history.Windows.Skip(Math.Max(0, w - 1)).Take(3))}");
                if (host.FirstDeliveryAt is { } first)
                {
                    joinLatencies.Add(first - host.JoinedAt.Value);
                }
            }
            else if (host.JoinedAt is null && _mode == OrderingMode.FixAnte && !host.Core.History.Windows.Any(x => x.Voids.Any(v => v.Shard == shard && v.IsRejoin)))
            {
                Check(!history[w - 1].HasDeparted(shard) && history[w].HasDeparted(shard) && history.Windows.Skip(w).All(x => x.QuotaOf(shard) == 0 && x.HasDeparted(shard)),
                    () => $"shard {shard} left when {w} windows were decided, but: {string.Join("; ", history.Windows.Skip(w - 1).Take(3))}");
            }
        }

        // Liveness: every record appended before the stop is committed, and commits kept flowing.
        for (var s = 0; s < Started; s++)
        {
            var host = _shards[s];
            var lastRecord = (int)Math.Min(host.IsRecord.Count, host.Dead ? Math.Min(history.VoidOf(s)?.From ?? long.MaxValue, history.KnownSlots(s)) : host.Core.FinalSlots) - 1;
            while (lastRecord >= 0 && !host.IsRecord[lastRecord])
            {
                lastRecord--;
            }

            var committedSlots = history.Count == 0 ? 0 : history.SlotsBeforeCut(s, _seq.CommittedCut);
            var shard = s;
            Check(lastRecord < committedSlots, () => $"shard {shard}: record at slot {lastRecord} not committed (committed slots {committedSlots}, durable {host.Core.DurableSlots}, known {history.KnownSlots(shard)}); {DescribeShards()}");
        }

        Check(_maxCommitGap < 30_000, () => $"the committed cut stalled for {_maxCommitGap}us");

        // The shards learned exactly the sequencer's windows (same prefix).
        for (var s = 0; s < Started; s++)
        {
            var mine = _shards[s].Core.History.Windows;
            var shard = s;
            Check(mine.Count <= history.Count, () => $"shard {shard} knows more windows than the sequencer");
            for (var w = 0; w < mine.Count; w++)
            {
                var window = w;
                Check(mine[w].ToString() == history[w].ToString() && mine[w].CutsPerWindow == history[w].CutsPerWindow,
                    () => $"shard {shard} window {window}: {mine[window]} vs sequencer {history[window]}");
            }
        }

        // Speculative GSN == confirmed GSN for every slot the shard positioned.
        for (var s = 0; s < Started; s++)
        {
            var host = _shards[s];
            for (var k = 0; k < host.SpecGsn.Count; k++)
            {
                if (host.SpecGsn[k] is not { } spec)
                {
                    continue;
                }

                var confirmed = history.GsnOfSlot(s, k);
                var (shard, slot) = (s, k);
                Check(spec == confirmed, () => $"shard {shard} slot {slot}: speculative GSN {spec} but confirmed GSN {confirmed}");
            }
        }

        // Records and no-op slots tile the committed prefix: each GSN is exactly one durable entry of one shard.
        var recordGsns = new HashSet<long>();
        long committedRecords = 0, committedNoOps = 0;
        for (var g = 0L; g < committedGsn; g++)
        {
            var (s, k) = history.Locate(g);
            var host = _shards[s];
            var gsn = g;
            if (history.IsVoid(s, k))
            {
                committedNoOps++; // a failed shard's void slot: a no-op, whatever the shard held there
                continue;
            }

            Check(k < host.Core.DurableSlots, () => $"GSN {gsn} -> shard {s} slot {k}, which is not durable ({host.Core.DurableSlots})");
            // (A shard that died may never have learned the window of a slot it had reported durable: it delivered nothing there.)
            Check(host.SpecGsn[(int)k] == g || (host.Dead && host.SpecGsn[(int)k] is null), () => $"GSN {gsn} -> shard {s} slot {k}, delivered by the shard as {host.SpecGsn[(int)k]}");
            if (host.IsRecord[(int)k])
            {
                committedRecords++;
                Check(recordGsns.Add(g), () => $"GSN {gsn} holds two records");
            }
            else
            {
                committedNoOps++;
            }
        }

        Check(committedRecords + committedNoOps == committedGsn, () => "tiling count");
        Check(committedRecords == records - orphans - voided, () => $"{committedRecords} records committed of {records} ({orphans} taken by departed shards beyond their last slot, {voided} held by failed shards beyond what the sequencer heard of)");
        MisSpeculated = misSpeculated;
        Committed = (committedRecords, committedNoOps);
        Check(_seq.CommittedCut > 20, () => $"only {_seq.CommittedCut} cuts committed");

        return $"seed {_seed} {_mode} W={_options.CutsPerWindow}: records {records}, committed cut {_seq.CommittedCut} gsn {committedGsn} "
            + $"(no-ops {committedNoOps}), windows {history.Count}, reports {_seq.ReportsApplied}, lag-fixes {_seq.LagFixesIssued} ({_lagFixesSent} delivered, {_seq.LagFixesAcknowledged} acked, slowest ack {_maxLagFixAckMicros}us, {_lagFixesUnackedOver50Ms} acks later than 50 ms, "
            + $"{_unackedLagFixSince.Count(x => x is not null)} never acked, {_lagFixesWithoutFill} needed no fill; "
            + $"{_reportsMissingFixedLag} reports after a durable fill without FixedLag, slowest fill-durable-to-ack {_maxFillDurableToAck}us), notices {_noticesSent}, max commit gap {_maxCommitGap}us, quotas of last window [{string.Join(',', history.Last?.Quotas ?? [])}]"
            + (Measure is null ? "" : $"; {Measure}")
            + (_seq.Failures == 0 ? "" : $"; shards failed {_seq.Failures}, rejoined {_seq.Rejoins}, records lost with them {voided}, of which delivered speculatively (mis-speculated) {misSpeculated}")
            + (_seq.Joins + _seq.Leaves == 0 ? "" : $"; shards joined {_seq.Joins}, left {_seq.Leaves}, orphaned records {orphans}, join to first delivery {string.Join(", ", joinLatencies.Select(l => $"{l / 1000.0:0.0} ms"))}");
    }
}
