using System.Runtime.CompilerServices;
using SpecLog.FixAnte;

namespace SpecLog.Client;

public sealed partial class SpecLogClient
{
    /// <summary>
    /// The records of the shards named in <paramref name="fromGsn"/>, each shard from its own GSN on (the first of its
    /// records at or after it), each record the moment its shard holds it durably, with its speculative GSN; records of
    /// one shard come in their order, those of different shards interleave. Confirmations are committed ranges of the
    /// whole log, the first starting at the lowest of the GSNs given. When a named shard fails, a
    /// <see cref="MisSpeculatedRange"/> names that shard's records that were passed on and will not be confirmed. For a
    /// consumer that owns some shards of the log (a consumer group's member) and resumes each from its own checkpoint.
    /// </summary>
    /// <exception cref="ArgumentException">No shard is named.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A shard does not exist, or a GSN is negative or beyond the log's known end.</exception>
    /// <exception cref="LogTrimmedException">A GSN lies below the log's trim point.</exception>
    public IAsyncEnumerable<SpecLogEvent> SubscribeShardsAsync(IReadOnlyDictionary<int, long> fromGsn, CancellationToken cancellationToken = default) =>
        SubscribeShardsAsync(fromGsn, null, cancellationToken);

    /// <summary>
    /// <see cref="SubscribeShardsAsync(IReadOnlyDictionary{int, long}, CancellationToken)"/> with a server-side
    /// <paramref name="filter"/> (null: every record): the shards send only the records it matches.
    /// </summary>
    public async IAsyncEnumerable<SpecLogEvent> SubscribeShardsAsync(IReadOnlyDictionary<int, long> fromGsn, RecordFilter? filter, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fromGsn);
        filter?.Validate();
        if (fromGsn.Count == 0)
        {
            throw new ArgumentException("Name at least one shard to subscribe to.", nameof(fromGsn));
        }

        foreach (var (shard, gsn) in fromGsn)
        {
            await CheckShardAsync(shard, cancellationToken);
            ArgumentOutOfRangeException.ThrowIfNegative(gsn, nameof(fromGsn));
        }

        var lowest = fromGsn.Values.Min();
        var windows = await WindowsCoveringAsync(fromGsn.Values.Max(), cancellationToken);
        await ThrowIfBelowHistoryAsync(lowest);
        var history = new WindowHistory();
        windows.AddTo(history);
        var shards = fromGsn.Keys.Order().ToArray();
        var slots = new long[shards.Length];
        for (var i = 0; i < shards.Length; i++)
        {
            var gsn = fromGsn[shards[i]];
            if (gsn > history.KnownEndGsn)
            {
                throw new ArgumentOutOfRangeException(nameof(fromGsn), gsn, $"Subscriptions can start in [0, {history.KnownEndGsn}] now.");
            }

            slots[i] = history.SlotsBefore(shards[i], gsn);
        }

        await foreach (var e in SubscribeUnorderedCoreAsync(shards, slots, windows, filter, cancellationToken, lowest))
        {
            yield return e;
        }
    }
}
