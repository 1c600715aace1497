using Microsoft.Extensions.Logging;
using SpecLog.FixAnte;

namespace SpecLog.Server.Grains;

/// <summary>
/// The shard after it has left the log (<see cref="FixAnte.ShardControl.Leave"/>): it keeps serving reads and subscriptions of
/// its records, and takes no more appends. Records it took beyond its last slot (between the sequencer's decision and
/// the window that told the shard) never get a position: their appends fail with <see cref="ShardRemovedException"/>,
/// which names the GSNs of the call's records that did make it.
/// </summary>
internal sealed partial class ShardGrain
{
    private long _rejoinRequestedMicros = long.MinValue / 2;

    /// <summary>Refuses an append to a shard that has left the log.</summary>
    private void EnsureMember()
    {
        if (_core.Departed)
        {
            throw new ShardRemovedException(_shard, []);
        }
    }

    /// <summary>Fails an append some of whose records lie beyond the shard's last slot, once the others are committed.</summary>
    private void FailBeyondLastSlot(PendingAppend p)
    {
        var gsns = new long[p.Count];
        for (var i = 0; i < gsns.Length; i++)
        {
            var slot = p.FirstSlot + i;
            gsns[i] = slot < _core.FinalSlots ? _core.History.GsnOfSlot(_shard, slot) : -1;
        }

        p.Fail(new ShardRemovedException(_shard, gsns));
    }

    /// <summary>
    /// An identified append to a shard that has left: records it already holds within its slots get their GSNs (a retry
    /// of an append written before it left is answered as always); if any record of the call is not in the log, the
    /// call fails with <see cref="ShardRemovedException"/> carrying the GSNs of those that are.
    /// </summary>
    private async Task<long[]> AnswerDepartedAsync(Guid client, long[] sequenceNumbers, CancellationToken cancellationToken)
    {
        var gsns = new long[sequenceNumbers.Length];
        for (var i = 0; i < gsns.Length; i++)
        {
            gsns[i] = _dedup.TryGet(client, sequenceNumbers[i], out var held) && held < _core.FinalSlots && !_core.History.IsVoid(_shard, held)
                ? await GsnWhenCommittedAsync(held).WaitAsync(cancellationToken)
                : -1;
        }

        return Array.IndexOf(gsns, -1L) < 0 ? gsns : throw new ShardRemovedException(_shard, gsns);
    }

    /// <summary>
    /// A shard the ordering layer declared failed that serves again (its replicas are back) asks to rejoin, carrying the
    /// slots its log holds, at most once a second until a window says it is a member again.
    /// </summary>
    private void MaybeRequestRejoin(long now)
    {
        if (!_core.Departed || !_core.FailedOut || _deactivating || !Leading || now - _rejoinRequestedMicros < 1_000_000)
        {
            return;
        }

        _rejoinRequestedMicros = now;
        LogRequestingRejoin(logger, _shard, _core.AssignedSlots);
        ordering.SendReport(ShardReport.ForControl(ShardControl.Join, _shard, SpecLogMetrics.NowMicros(), _core.AssignedSlots));
    }

    /// <summary>Writes no-ops over this shard's slots up to the end of a rejoin's void, so its next record gets a real position.</summary>
    private void SkipVoidSlots()
    {
        var skip = _core.SlotsToSkip;
        if (skip > 0)
        {
            AppendNoOp(skip);
        }
    }

    /// <summary>After windows arrived: note a rejoin (and skip the void), or a departure.</summary>
    private void AfterShardSetNews(bool wasMember)
    {
        if (wasMember && _core.Departed)
        {
            LogDeparted(logger, _shard, _core.FinalSlots, Math.Max(0, _core.DurableSlots - _core.FinalSlots));
        }
        else if (!wasMember && !_core.Departed)
        {
            LogRejoined(logger, _shard, _core.AssignedSlots, _core.SlotsToSkip);
            SkipVoidSlots();
            _trimCatchUpDue = true; // the log may have been trimmed while it was failed
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} was declared failed and serves again: it asks to rejoin the log, holding {Slots} slots")]
    private static partial void LogRequestingRejoin(ILogger logger, int shard, long slots);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} rejoined the log: it held {Slots} slots and skips {Skip} void slots before its next record")]
    private static partial void LogRejoined(ILogger logger, int shard, long slots, long skip);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} has left the log: its last slot is {FinalSlots} - 1 ({Beyond} durable slots beyond it are not in the log); it serves reads only")]
    private static partial void LogDeparted(ILogger logger, int shard, long finalSlots, long beyond);
}
