using Microsoft.Extensions.Logging;

namespace SpecLog.Client;

public sealed partial class SpecLogClient
{
    /// <summary>
    /// Removes every record below GSN <paramref name="gsn"/> from the log: each shard records the trim point durably
    /// (reads and subscriptions below it fail with <see cref="LogTrimmedException"/> from then on) and its replicas
    /// delete the whole log segments below it, so disk use and recovery time follow what is retained. Only committed
    /// positions can be trimmed. Idempotent: repeating it, or trimming below an earlier trim point, changes nothing.
    /// Shards declared failed (every replica gone) are skipped; the others are retried through failovers.
    /// </summary>
    /// <returns>The shards trimmed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gsn"/> is negative or not committed yet.</exception>
    public async Task<IReadOnlyList<int>> TrimAsync(long gsn, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gsn);
        var status = await Sequencer.GetStatusAsync();
        if (gsn > status.CommittedGsn)
        {
            throw new ArgumentOutOfRangeException(nameof(gsn), gsn, $"Only committed positions can be trimmed: GSNs below {status.CommittedGsn} are committed now.");
        }

        await RefreshWindowsAsync(0, cancellationToken);
        if (gsn > _history.KnownEndGsn)
        {
            await RefreshWindowsAsync(_history.Count, cancellationToken);
        }

        var shardCount = await EnsureShardCountAsync(_history.Last?.ShardCount ?? 0, cancellationToken);
        var slots = new long[shardCount];
        await _historyLock.WaitAsync(cancellationToken);
        try
        {
            for (var s = 0; s < shardCount; s++)
            {
                slots[s] = _history.SlotsBefore(s, gsn);
            }
        }
        finally
        {
            _historyLock.Release();
        }

        var failed = status.FailedShards ?? [];
        var trimmed = new List<int>();
        for (var s = 0; s < shardCount; s++)
        {
            if (slots[s] == 0 || failed.Contains(s))
            {
                continue; // nothing of it below the point, or it is gone
            }

            var shard = s;
            await _routes.CallAsync(s, g => g.TrimAsync(gsn, slots[shard]), _options.AppendRetryDeadline, cancellationToken);
            trimmed.Add(s);
        }

        // Then the ordering layer's window history: the windows wholly below the point go there too (and later from
        // this client's own copy, which a new client fetches from the base).
        await Sequencer.TrimHistoryAsync(gsn);
        LogTrimmed(_logger, gsn, trimmed.Count);
        return trimmed;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Trimmed the log below GSN {Gsn} ({Shards} shards)")]
    private static partial void LogTrimmed(ILogger logger, long gsn, int shards);
}
