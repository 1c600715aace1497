using System.Collections.Immutable;

namespace SpecLog.FixAnte;

/// <summary>The shard set of the state machine: joins, leaves and whole-shard failures (<see cref="ShardControl"/>).</summary>
public sealed partial class SequencerState
{
    private void Grow(int count)
    {
        var from = ShardCount;
        if (count <= from)
        {
            return;
        }

        Array.Resize(ref _durableSlots, count);
        Array.Resize(ref _appliedSeq, count);
        Array.Resize(ref _lagFixTarget, count);
        Array.Resize(ref _rateMarks, count);
        Array.Resize(ref _latest, count);
        Array.Resize(ref _knownWindows, count);
        Array.Resize(ref _reportedSinceCut, count);
        Array.Resize(ref _cutBase, count);
        Array.Resize(ref _waiting, count);
        Array.Resize(ref _jumpEnvelope, count);
        Array.Resize(ref _jumpRecords, count);
        Array.Resize(ref _strikes, count);
        Array.Resize(ref _groundedLeft, count);
        Array.Resize(ref _returning, count);
        Array.Resize(ref _joining, count);
        Array.Resize(ref _leaving, count);
        Array.Resize(ref _departed, count);
        Array.Resize(ref _failing, count);
        Array.Resize(ref _failedOut, count);
        Array.Resize(ref _rejoinFrom, count);
        for (var s = from; s < count; s++)
        {
            _appliedSeq[s] = -1;
            _rateMarks[s] = new Queue<(long, long)>(RATE_MARKS);
            _jumpEnvelope[s] = -1;
            _jumpRecords[s] = -1;
        }
    }

    /// <summary>
    /// A change of the shard set. Fix-Ante: a join or leave waits for the next window the sequencer decides (it holds the
    /// cuts moving until then, see <see cref="AnyWaiting"/>; a join decides it at once when only the current window is
    /// known); windows decided already are never changed, so nothing delivered speculatively moves. A failure is
    /// settled at once, with a window decided now whatever is known already: the failed shard's slots beyond what it
    /// reported durable become no-ops (<see cref="ShardVoid"/>), the only positions that ever change meaning. Scalog: a
    /// joining shard counts from now, a leaving or failed one after the next cut.
    /// Deterministic, and idempotent for repeated requests.
    /// </summary>
    private void ApplyControl(ShardControl control, int shard, SequencerOutput output, long argument = long.MinValue)
    {
        switch (control)
        {
            case ShardControl.Join when shard >= 0 && shard < ShardCount && _departed[shard]:
                Rejoin(shard, argument, output);
                return;
            case ShardControl.Join when shard < ShardCount:
                return; // joined already (a repeated request)
            case ShardControl.Join when shard > ShardCount:
                output.ControlRefused = $"Shard {shard} cannot join: the next shard id is {ShardCount}.";
                return;
            case ShardControl.Join:
                Grow(shard + 1);
                Joins++;
                if (_options.Mode == OrderingMode.FixAnte)
                {
                    _joining[shard] = true;
                    _pendingChanges++;
                    if (History.Count > 0)
                    {
                        AdvanceFixAnte(output);
                    }
                }

                return;
            case ShardControl.Leave or ShardControl.Fail when shard < 0 || shard >= ShardCount:
                output.ControlRefused = $"Shard {shard} cannot {(control == ShardControl.Fail ? "fail" : "leave")}: the log has shards 0 to {ShardCount - 1}.";
                return;
            case ShardControl.Fail when _departed[shard] || _failing[shard]:
                return; // gone or failing already
            case ShardControl.Fail when argument != long.MinValue && argument != _appliedSeq[shard]:
                output.ControlRefused = $"Shard {shard} is not failed: a report of it (#{_appliedSeq[shard]}) was applied after the failure was observed (#{argument}).";
                return;
            case ShardControl.Fail:
                if (!AnyOtherStays(shard))
                {
                    output.ControlRefused = $"Shard {shard} cannot be failed: it is the last shard of the log.";
                    return;
                }

                if (_options.Mode == OrderingMode.Scalog)
                {
                    // Nothing was delivered before its commit: the shard's records beyond the last cut are not in the log.
                    _departed[shard] = true;
                    return;
                }

                _failing[shard] = true;
                if (!_leaving[shard])
                {
                    _leaving[shard] = true;
                    _pendingChanges++;
                }

                if (_joining[shard])
                {
                    _joining[shard] = false;
                    _pendingChanges--;
                }

                if (History.Count > 0)
                {
                    AdvanceFixAnte(output); // settled with a window decided now
                }

                return;
            case ShardControl.Leave when _departed[shard] || _leaving[shard]:
                return; // left or leaving already
            case ShardControl.Leave:
                if (!AnyOtherStays(shard))
                {
                    output.ControlRefused = $"Shard {shard} cannot leave: it is the last shard of the log.";
                    return;
                }

                Leaves++;
                if (_joining[shard])
                {
                    _joining[shard] = false; // it never got a slot
                    _pendingChanges--;
                }

                if (_options.Mode == OrderingMode.FixAnte)
                {
                    _leaving[shard] = true;
                    _pendingChanges++;
                }
                else
                {
                    _departed[shard] = true;
                }

                return;
            default:
                output.ControlRefused = $"Unknown shard-set change {(int)control}.";
                return;
        }
    }

    /// <summary>
    /// A failed shard whose replicas are back asks to rejoin, holding <paramref name="heldSlots"/> slots in its log. Like a
    /// join it gets its first quota in the next window decided; that window voids its slots from its first one there up
    /// to what it holds (records it had taken beyond its last slot before it failed: their appends failed, so they
    /// never get a position) and it continues after them. A shard that left (rather than failed) does not come back.
    /// </summary>
    private void Rejoin(int shard, long heldSlots, SequencerOutput output)
    {
        if (_options.Mode != OrderingMode.FixAnte)
        {
            output.ControlRefused = $"Shard {shard} cannot rejoin: a departed shard rejoins only with Fix-Ante ordering.";
            return;
        }

        if (!_failedOut[shard])
        {
            output.ControlRefused = $"Shard {shard} left the log; a removed shard does not come back (add a new one).";
            return;
        }

        _rejoinFrom[shard] = Math.Max(_rejoinFrom[shard], heldSlots);
        if (_joining[shard])
        {
            return; // a repeated request
        }

        _joining[shard] = true;
        _pendingChanges++;
        if (History.Count > 0)
        {
            AdvanceFixAnte(output);
        }
    }

    /// <summary>Whether the latest void of <paramref name="shard"/> is a rejoin's (so it is a member again, or left since).</summary>
    private bool IsRejoinVoid(int shard) => History.LatestVoidIsRejoin(shard);

    /// <summary>Whether some shard has <paramref name="flag"/> set; a scan only while a change is pending (rare).</summary>
    private bool AnyPending(bool[] flag) => _pendingChanges > 0 && Array.IndexOf(flag, true) >= 0;

    /// <summary>Whether a shard other than <paramref name="shard"/> stays in the log (not departed, leaving or failing).</summary>
    private bool AnyOtherStays(int shard)
    {
        for (var s = 0; s < ShardCount; s++)
        {
            if (s != shard && !_departed[s] && !_leaving[s])
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Settles the pending joins and leaves into the window being decided (whose <paramref name="quotas"/> already give
    /// joining shards their first quota and leaving ones none); returns the window's departed shards.
    /// </summary>
    private (ImmutableArray<int> Departed, ImmutableArray<ShardVoid> Voids) TakeMembershipChanges(ImmutableArray<int> quotas)
    {
        if (_pendingChanges == 0)
        {
            return (History.Last!.Departed, []);
        }

        var departed = ImmutableArray.CreateBuilder<int>();
        var voids = ImmutableArray.CreateBuilder<ShardVoid>();
        for (var s = 0; s < ShardCount; s++)
        {
            if (_leaving[s])
            {
                _leaving[s] = false;
                _departed[s] = true;
                _pendingChanges--;
                if (_failing[s])
                {
                    // Its slots from what it reported durable to the end of the windows decided so far are no-ops:
                    // counted as filled, so the cuts go on without it.
                    _failing[s] = false;
                    _failedOut[s] = true;
                    Failures++;
                    voids.Add(new ShardVoid(s, _durableSlots[s]));
                    _durableSlots[s] = Math.Max(_durableSlots[s], History.KnownSlots(s));
                }
            }
            else if (_joining[s] && quotas[s] > 0)
            {
                _joining[s] = false;
                _pendingChanges--;
                if (_departed[s])
                {
                    // A failed shard rejoins: its slots from here to what its log holds are void, and it goes on after them.
                    _departed[s] = false;
                    _failedOut[s] = false;
                    Rejoins++;
                    var first = History.KnownSlots(s);
                    var to = Math.Max(first, _rejoinFrom[s]);
                    voids.Add(new ShardVoid(s, first, to));
                    _durableSlots[s] = Math.Max(_durableSlots[s], to);
                    _rateMarks[s].Clear(); // its rate is measured from its return, not across its absence
                    _rateMarks[s].Enqueue(_latest[s]);
                    _rejoinFrom[s] = 0;
                }
            }

            if (_departed[s])
            {
                departed.Add(s);
            }
        }

        return (departed.ToImmutable(), voids.ToImmutable());
    }
}
