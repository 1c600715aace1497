using System.Collections.Immutable;

namespace SpecLog.FixAnte;

/// <summary>Straggler grounding (<see cref="FixAnteOptions.Grounding"/>): strikes, and quota 0 for a few windows.</summary>
public sealed partial class SequencerState
{
    /// <summary>
    /// A report of a shard that is, even after it, <see cref="FixAnteOptions.GroundingLagCuts"/> cuts or more behind the
    /// leading shard beyond its own lag-fix slack is a strike; any other report of it clears its strikes. A grounded
    /// shard collects none (its empty windows complete by themselves).
    /// </summary>
    private void CountStrike(int shard)
    {
        if (IsGrounded(shard))
        {
            _strikes[shard] = 0;
            return;
        }

        var completed = History.CompletedCut(shard, _durableSlots[shard]);
        var lagging = LeadingCut() - completed >= _options.GroundingLagCuts + LagFixSlackOf(shard);
        _strikes[shard] = lagging ? _strikes[shard] + 1 : 0;
    }

    /// <summary>
    /// Grounding in the quotas of the window being decided: a grounded shard gets 0 while it has windows left, then
    /// <see cref="FixAnteOptions.MinQuota"/> once; a shard with enough strikes is grounded now, unless no other shard
    /// would keep a quota.
    /// </summary>
    private void ApplyGrounding(ImmutableArray<int>.Builder quotas)
    {
        for (var s = 0; s < ShardCount; s++)
        {
            if (_departed[s] || _leaving[s])
            {
                _strikes[s] = 0;
                _groundedLeft[s] = 0;
                _returning[s] = false;
                continue;
            }

            if (_groundedLeft[s] == 0 && !_returning[s] && _strikes[s] >= _options.GroundingStrikes)
            {
                var others = 0;
                for (var i = 0; i < ShardCount; i++)
                {
                    others += i != s && quotas[i] > 0 && _groundedLeft[i] == 0 ? 1 : 0;
                }

                if (others > 0)
                {
                    _groundedLeft[s] = _options.GroundingWindows;
                    Groundings++;
                }

                _strikes[s] = 0;
            }

            if (_groundedLeft[s] > 0)
            {
                quotas[s] = 0;
                if (--_groundedLeft[s] == 0)
                {
                    _returning[s] = true;
                }
            }
            else if (_returning[s])
            {
                // Back with the smallest quota; its rate is measured afresh (its records waited while it was grounded).
                quotas[s] = _options.MinQuota;
                _returning[s] = false;
                _rateMarks[s].Clear();
                _rateMarks[s].Enqueue(_latest[s]);
            }
        }
    }
}
