using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering;

/// <summary>
/// Finds shards that hold the log back and have gone silent: somebody waits for cuts, the shard's completed cut is the
/// committed one (the others are ahead of it, lag-fixes included), and no report of it was applied for the timeout.
/// Belfast declares a shard failed when it does not answer a lag-fix within 50 ms; replicated shards here change
/// leaders in about a second, so the timeout is longer (<see cref="SpecLogOptions.ShardFailureTimeout"/>). The host
/// calls <see cref="Check"/> from its timer and proposes <see cref="ShardControl.Fail"/> for what it returns; the
/// decision itself is the replicated state machine's, so a shard is failed once however many hosts propose it.
/// </summary>
internal sealed class ShardFailureDetector(TimeSpan timeout, TimeProvider timeProvider)
{
    private long[] _seenSeq = [];
    private long[] _heardAt = [];

    /// <summary>Shards to declare failed now.</summary>
    public List<int> Check(SequencerState state)
    {
        var now = timeProvider.GetTimestamp();
        if (_seenSeq.Length < state.ShardCount)
        {
            var from = _seenSeq.Length;
            Array.Resize(ref _seenSeq, state.ShardCount);
            Array.Resize(ref _heardAt, state.ShardCount);
            for (var s = from; s < state.ShardCount; s++)
            {
                _seenSeq[s] = long.MinValue;
            }
        }

        List<int>? failed = null;
        for (var s = 0; s < state.ShardCount; s++)
        {
            var seq = state.AppliedSeqOf(s);
            var holding = state.AnyWaiting && !state.IsDeparted(s) && !state.IsFailing(s) && state.CompletedCutOf(s) <= state.CommittedCut;
            if (seq != _seenSeq[s] || !holding)
            {
                // Heard of (or not holding anybody back: an idle or ahead shard is not suspect).
                _seenSeq[s] = seq;
                _heardAt[s] = now;
                continue;
            }

            if (timeProvider.GetElapsedTime(_heardAt[s], now) >= timeout)
            {
                (failed ??= []).Add(s);
                _heardAt[s] = now; // proposed: ask again only after another timeout
            }
        }

        return failed ?? [];
    }
}
