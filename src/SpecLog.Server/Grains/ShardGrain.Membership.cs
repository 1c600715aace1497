using Microsoft.Extensions.Logging;

namespace SpecLog.Server.Grains;

/// <summary>
/// The shard after it has left the log (<see cref="FixAnte.ShardControl.Leave"/>): it keeps serving reads and subscriptions of
/// its records, and takes no more appends. Records it took beyond its last slot (between the sequencer's decision and
/// the window that told the shard) never get a position: their appends fail with <see cref="ShardRemovedException"/>,
/// which names the GSNs of the call's records that did make it.
/// </summary>
internal sealed partial class ShardGrain
{
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
            gsns[i] = _dedup.TryGet(client, sequenceNumbers[i], out var held) && held < _core.FinalSlots
                ? await GsnWhenCommittedAsync(held).WaitAsync(cancellationToken)
                : -1;
        }

        return Array.IndexOf(gsns, -1L) < 0 ? gsns : throw new ShardRemovedException(_shard, gsns);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} has left the log: its last slot is {FinalSlots} - 1 ({Beyond} durable slots beyond it are not in the log); it serves reads only")]
    private static partial void LogDeparted(ILogger logger, int shard, long finalSlots, long beyond);
}
