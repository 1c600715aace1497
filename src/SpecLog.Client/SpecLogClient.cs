using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SpecLog.FixAnte;

namespace SpecLog.Client;

/// <summary>
/// The application's entry to the log: append (acknowledged with the final GSN), read committed positions, and
/// subscribe to speculative delivery. Works from an Orleans client or inside a silo; thread-safe.
/// </summary>
public sealed partial class SpecLogClient(IGrainFactory grainFactory, IOptions<SpecLogClientOptions> options, ILogger<SpecLogClient>? logger = null)
{
    private readonly IGrainFactory _grainFactory = grainFactory;

    /// <summary>The grain factory the client calls through (the consumer library reaches its checkpoint grains with it).</summary>
    internal IGrainFactory GrainFactory => _grainFactory;
    private readonly SpecLogClientOptions _options = Validated(options.Value);
    private readonly ILogger _logger = logger ?? NullLogger<SpecLogClient>.Instance;
    private readonly SemaphoreSlim _historyLock = new(1, 1);
    private readonly WindowHistory _history = new();
    private int _roundRobin;
    private int _maxRecordSize;

    private static SpecLogClientOptions Validated(SpecLogClientOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.MaxAppendsInFlightPerShard < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.MaxAppendsInFlightPerShard, $"{nameof(SpecLogClientOptions.MaxAppendsInFlightPerShard)} must be at least 1.");
        }

        if (o.SubscriptionBuffer < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.SubscriptionBuffer, $"{nameof(SpecLogClientOptions.SubscriptionBuffer)} must be at least 1.");
        }

        if (o.AppendRetryDeadline <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.AppendRetryDeadline, $"{nameof(SpecLogClientOptions.AppendRetryDeadline)} must be positive.");
        }

        if (o.ReplicatedAppendCallTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.ReplicatedAppendCallTimeout, $"{nameof(SpecLogClientOptions.ReplicatedAppendCallTimeout)} must be positive.");
        }

        if (o.AppendCallTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.AppendCallTimeout, $"{nameof(SpecLogClientOptions.AppendCallTimeout)} must be positive.");
        }

        if (o.SubscriptionBufferBytes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.SubscriptionBufferBytes, $"{nameof(SpecLogClientOptions.SubscriptionBufferBytes)} must be at least 1.");
        }

        if (o.ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.ConnectTimeout, $"{nameof(SpecLogClientOptions.ConnectTimeout)} must be positive.");
        }

        if (o.ShardSetRefresh <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.ShardSetRefresh, $"{nameof(SpecLogClientOptions.ShardSetRefresh)} must be positive.");
        }

        if (o.SubscriptionRefresh <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(o), o.SubscriptionRefresh, $"{nameof(SpecLogClientOptions.SubscriptionRefresh)} must be positive.");
        }

        return o;
    }

    /// <summary>Creates a client with default options.</summary>
    public SpecLogClient(IGrainFactory grainFactory)
        : this(grainFactory, Options.Create(new SpecLogClientOptions()))
    {
    }

    private ISequencerGrain Sequencer => _grainFactory.GetGrain<ISequencerGrain>(0);

    /// <summary>Reads the committed record at <paramref name="gsn"/>; null if that position holds a no-op filler.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The position is negative or not committed yet.</exception>
    public async Task<LogRecord?> ReadAsync(long gsn, CancellationToken cancellationToken = default)
    {
        if (gsn is < 0 or long.MaxValue)
        {
            var committed = (await Sequencer.GetStatusAsync()).CommittedGsn;
            throw new ArgumentOutOfRangeException(nameof(gsn), gsn, $"GSN {gsn} is not a readable position: GSNs start at 0 and only those below {committed} are committed.");
        }

        var records = await ReadCoreAsync(gsn, gsn + 1, cancellationToken);
        return records.Count == 0 ? null : records[0];
    }

    /// <summary>Reads the committed records with GSNs in [<paramref name="fromGsn"/>, <paramref name="toGsn"/>), in order (no-ops left out).</summary>
    public Task<IReadOnlyList<LogRecord>> ReadRangeAsync(long fromGsn, long toGsn, CancellationToken cancellationToken = default) =>
        ReadCoreAsync(fromGsn, toGsn, cancellationToken);

    /// <summary>
    /// The whole log from <paramref name="fromGsn"/> in GSN order, without gaps: every record as soon as every earlier
    /// slot is speculatively known, then confirmations as committed ranges. No-ops never appear.
    /// </summary>
    public IAsyncEnumerable<SpecLogEvent> SubscribeAsync(long fromGsn = 0, CancellationToken cancellationToken = default) =>
        SubscribeCoreAsync(fromGsn, null, cancellationToken);

    private async IAsyncEnumerable<SpecLogEvent> SubscribeCoreAsync(long fromGsn, RecordFilter? filter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var shardCount = await GetShardCountAsync(cancellationToken);
        var merger = new LogMerger(shardCount, fromGsn, await WindowsCoveringAsync(fromGsn, cancellationToken));
        await EnsureShardCountAsync(merger.ShardCount, cancellationToken);
        await using var feed = await ShardFeed.StartAsync(this, Enumerable.Range(0, merger.ShardCount).ToArray(), merger.ExpectedSlot, filter, cancellationToken);
        var events = new List<SpecLogEvent>();
        var subscribed = merger.ShardCount;
        await foreach (var (batch, receivedAt) in feed.ReadAllAsync(cancellationToken))
        {
            merger.Add(batch, receivedAt);
            if (merger.ShardCount > subscribed)
            {
                // A window names shards added since the subscription started: follow them too.
                await EnsureShardCountAsync(merger.ShardCount, cancellationToken);
                await feed.AddShardsAsync(Enumerable.Range(subscribed, merger.ShardCount - subscribed), cancellationToken);
                subscribed = merger.ShardCount;
            }

            events.Clear();
            merger.Drain(events);
            foreach (var e in events)
            {
                yield return e;
            }
        }
    }

    /// <summary>
    /// One shard's records from shard slot <paramref name="fromSlot"/>, each the moment it is durable and positioned,
    /// with its GSN; confirmations as committed ranges. No-ops never appear.
    /// </summary>
    public async IAsyncEnumerable<SpecLogEvent> SubscribeShardAsync(int shard, long fromSlot = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await CheckShardAsync(shard, cancellationToken);
        await foreach (var e in SubscribeUnorderedCoreAsync([shard], [fromSlot], await WindowsCoveringAsync(0, cancellationToken), null, cancellationToken))
        {
            yield return e;
        }
    }

    /// <summary>
    /// The whole log from <paramref name="fromGsn"/>, unordered: every record the moment its shard holds it durably and
    /// knows its position, with its speculative GSN (records of one shard arrive in their order; records of different
    /// shards interleave as they become durable, not in GSN order), and confirmations as committed ranges
    /// [from, to) of the log, each starting where the previous one ended (a range may cover records of other shards
    /// that are still on their way: they arrive already confirmed). No-ops never appear. For consumers whose
    /// state is per shard or per key and who want each record without waiting for lower positions of other shards.
    /// </summary>
    public IAsyncEnumerable<SpecLogEvent> SubscribeUnorderedAsync(long fromGsn = 0, CancellationToken cancellationToken = default) =>
        SubscribeUnorderedFromAsync(fromGsn, null, cancellationToken);

    private async IAsyncEnumerable<SpecLogEvent> SubscribeUnorderedFromAsync(long fromGsn, RecordFilter? filter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var shardCount = await GetShardCountAsync(cancellationToken);
        // Where a GSN-ordered subscription from fromGsn would start on each shard (the merger also checks fromGsn).
        var windows = await WindowsCoveringAsync(fromGsn, cancellationToken);
        var start = new LogMerger(shardCount, fromGsn, windows);
        var fromSlots = Enumerable.Range(0, shardCount).Select(start.ExpectedSlot).ToArray();
        await foreach (var e in SubscribeUnorderedCoreAsync(Enumerable.Range(0, shardCount).ToArray(), fromSlots, windows, filter, cancellationToken, fromGsn, followNewShards: true))
        {
            yield return e;
        }
    }

    /// <summary>
    /// Passes the records of <paramref name="shards"/> through as they arrive and the confirmed prefix as ranges. The
    /// first confirmation starts at <paramref name="confirmedFrom"/>, or, when it is negative, at the confirmed prefix
    /// the first push reports (a per-shard subscription does not know where the log's prefix stood before).
    /// </summary>
    /// <remarks>
    /// When a window settles a whole-shard failure and records of that shard at its void slots were passed on, a
    /// <see cref="MisSpeculatedRange"/> for that shard follows, from the first void slot's GSN past the last record passed on.
    /// </remarks>
    private async IAsyncEnumerable<SpecLogEvent> SubscribeUnorderedCoreAsync(int[] shards, long[] fromSlots, WindowSlice windows, RecordFilter? filter, [EnumeratorCancellation] CancellationToken cancellationToken, long confirmedFrom = -1, bool followNewShards = false)
    {
        var history = new WindowHistory();
        windows.AddTo(history);
        var lastPassed = new Dictionary<int, (long Slot, long Gsn)>();
        // Per shard, the next slot to pass on (read by the feed's refresh from another thread).
        var next = new System.Collections.Concurrent.ConcurrentDictionary<int, long>();
        for (var i = 0; i < shards.Length; i++)
        {
            next[shards[i]] = fromSlots[i];
        }

        var confirmed = confirmedFrom;
        var known = shards.Length == 0 ? 0 : shards.Max() + 1;
        await using var feed = await ShardFeed.StartAsync(this, shards, s => next.GetValueOrDefault(s), filter, cancellationToken);
        await foreach (var (batch, _) in feed.ReadAllAsync(cancellationToken))
        {
            if (followNewShards && batch.Windows.Length > 0 && batch.Windows[^1].ShardCount > known)
            {
                // A window names shards added since the subscription started: follow them too (from their first slot).
                var named = batch.Windows[^1].ShardCount;
                await EnsureShardCountAsync(named, cancellationToken);
                await feed.AddShardsAsync(Enumerable.Range(known, named - known), cancellationToken);
                known = named;
            }

            var knownWindows = history.Count;
            new WindowSlice(batch.Base, batch.Windows).AddTo(history);
            for (var w = Math.Max(knownWindows, history.First); w < history.Count; w++)
            {
                foreach (var gone in history[w].Voids)
                {
                    if (!gone.IsRejoin && lastPassed.TryGetValue(gone.Shard, out var passed) && passed.Slot >= gone.FromSlot)
                    {
                        yield return new MisSpeculatedRange(history.GsnOfSlot(gone.Shard, gone.FromSlot), passed.Gsn + 1, gone.Shard);
                    }
                }
            }

            var from = next.GetValueOrDefault(batch.Shard);
            foreach (var e in batch.Entries)
            {
                if (!e.IsNoOp && e.Slot >= from && !history.IsVoid(batch.Shard, e.Slot))
                {
                    lastPassed[batch.Shard] = (e.Slot, e.Gsn);
                    yield return new SpeculativeRecord(e.Gsn, batch.Shard, e.Payload, e.Tag);
                }
            }

            next[batch.Shard] = Math.Max(from, batch.ToSlot);
            if (confirmed < 0)
            {
                confirmed = batch.ConfirmedGsn;
            }
            else if (batch.ConfirmedGsn > confirmed)
            {
                yield return new ConfirmedRange(confirmed, batch.ConfirmedGsn);
                confirmed = batch.ConfirmedGsn;
            }
        }
    }

    private async Task<IReadOnlyList<LogRecord>> ReadCoreAsync(long fromGsn, long toGsn, CancellationToken cancellationToken)
    {
        if (fromGsn < 0 || toGsn < fromGsn)
        {
            throw new ArgumentOutOfRangeException(nameof(fromGsn), $"[{fromGsn}, {toGsn}) is not a range of positions.");
        }

        await RefreshWindowsAsync(0, cancellationToken);
        if (toGsn > _history.KnownEndGsn)
        {
            await RefreshWindowsAsync(_history.Count, cancellationToken);
        }

        var status = await Sequencer.GetStatusAsync();
        if (toGsn > status.CommittedGsn)
        {
            throw new ArgumentOutOfRangeException(nameof(toGsn), toGsn, $"Only GSNs below {status.CommittedGsn} are committed; [{fromGsn}, {toGsn}) reaches beyond.");
        }

        await ThrowIfBelowHistoryAsync(fromGsn, status);
        var result = new List<LogRecord>();
        var shardCount = await EnsureShardCountAsync(_history.Last?.ShardCount ?? 0, cancellationToken);
        for (var s = 0; s < shardCount; s++)
        {
            long slot, end;
            (long From, long To, long Window)[] voids;
            await _historyLock.WaitAsync(cancellationToken);
            try
            {
                slot = _history.SlotsBefore(s, fromGsn);
                end = _history.SlotsBefore(s, toGsn);
                voids = [.. _history.VoidsOf(s)];
            }
            finally
            {
                _historyLock.Release();
            }

            // A failed shard's void slots are no-ops, whatever it held there: nothing is read there (the shard may be
            // gone), and a read stops at the next void.
            while ((slot = WindowHistory.SkipVoid(voids, slot)) < end)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var from = slot;
                var until = Math.Min(end, voids.Where(v => v.From > from).Select(v => v.From).DefaultIfEmpty(end).Min());
                var read = await _routes.CallAsync(s, g => g.ReadAsync(from, (int)Math.Min(until - from, 4096)), _options.AppendRetryDeadline, cancellationToken);
                if (read.Entries.Length == 0)
                {
                    throw new InvalidOperationException($"Shard {s} returned nothing at committed slot {slot}.");
                }

                foreach (var e in read.Entries)
                {
                    if (!e.IsNoOp && e.Slot < until)
                    {
                        result.Add(new LogRecord(e.Gsn, s, e.Payload, e.Tag));
                    }

                    slot = Math.Max(slot, Math.Min(until, e.Slot + e.SlotCount));
                }
            }
        }

        result.Sort(static (a, b) => a.Gsn.CompareTo(b.Gsn));
        return result;
    }

    /// <summary>
    /// The windows known (with their base if the history starts after window 0), refreshed first so that they reach
    /// <paramref name="fromGsn"/> if the log does.
    /// </summary>
    /// <exception cref="LogTrimmedException"><paramref name="fromGsn"/> lies below the windows the log still holds.</exception>
    private async Task<WindowSlice> WindowsCoveringAsync(long fromGsn, CancellationToken cancellationToken)
    {
        await RefreshWindowsAsync(0, cancellationToken);
        if (fromGsn > _history.KnownEndGsn)
        {
            await RefreshWindowsAsync(_history.Count, cancellationToken);
        }

        await ThrowIfBelowHistoryAsync(fromGsn);
        await _historyLock.WaitAsync(cancellationToken);
        try
        {
            return WindowSlice.From(_history, 0);
        }
        finally
        {
            _historyLock.Release();
        }
    }

    /// <summary>Positions below the windows the history holds were trimmed: a clear error naming the trim point.</summary>
    private async Task ThrowIfBelowHistoryAsync(long gsn, SequencerStatus? status = null)
    {
        if (gsn < _history.FirstGsn)
        {
            status ??= await Sequencer.GetStatusAsync();
            throw new LogTrimmedException(gsn, Math.Max(status.TrimmedBelowGsn, _history.FirstGsn));
        }
    }

    private async Task RefreshWindowsAsync(int ifFewerThan, CancellationToken cancellationToken)
    {
        if (_history.Count > ifFewerThan)
        {
            return;
        }

        await _historyLock.WaitAsync(cancellationToken);
        try
        {
            if (_history.Count <= ifFewerThan)
            {
                (await Sequencer.GetWindowsAsync(_history.Count)).AddTo(_history);
            }
        }
        finally
        {
            _historyLock.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Unsubscribing from shard {Shard} failed")]
    private static partial void LogUnsubscribeFailed(ILogger logger, Exception e, int shard);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refreshing a subscription failed; retrying at the next interval")]
    private static partial void LogRefreshFailed(ILogger logger, Exception e);
}
