using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace SpecLog.Client;

public sealed partial class SpecLogClient
{
    /// <summary>Subscriptions of one consumer to several shards, delivered into one bounded channel.</summary>
    private sealed class ShardFeed : IShardObserver, IAsyncDisposable
    {
        private readonly SpecLogClient _client;
        private readonly List<(int Shard, Guid Id)> _subscriptions = [];
        private readonly Func<int, long> _position;
        private readonly Channel<(ShardEventBatch Batch, long ReceivedMicros, long Bytes)> _channel;
        private long _bufferedBytes;
        private TaskCompletionSource _room = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _stop = new();
        private readonly CancellationTokenSource _stopRefresh = new();
        private IShardObserver _reference = null!;
        private Task _refresh = Task.CompletedTask;

        private static readonly TimeSpan MinRegisterWait = TimeSpan.FromSeconds(2);
        private readonly RecordFilter? _filter;

        private ShardFeed(SpecLogClient client, int[] shards, Func<int, long> position, RecordFilter? filter)
        {
            _client = client;
            _filter = filter;
            _subscriptions.AddRange(shards.Select(s => (s, Guid.NewGuid())));
            _position = position;
            _channel = Channel.CreateBounded<(ShardEventBatch, long, long)>(new BoundedChannelOptions(client._options.SubscriptionBuffer) { SingleReader = true });
        }

        public static async Task<ShardFeed> StartAsync(SpecLogClient client, int[] shards, Func<int, long> position, RecordFilter? filter, CancellationToken cancellationToken)
        {
            var feed = new ShardFeed(client, shards, position, filter);
            feed._reference = client._grainFactory.CreateObjectReference<IShardObserver>(feed);
            await feed.RegisterAllAsync(cancellationToken);
            feed._refresh = feed.RefreshLoopAsync();
            return feed;
        }

        /// <summary>The shards subscribed to.</summary>
        public int[] Shards
        {
            get
            {
                lock (_subscriptions)
                {
                    return [.. _subscriptions.Select(x => x.Shard)];
                }
            }
        }

        /// <summary>Subscribes to shards added to the log while the feed runs, from the consumer's position on each.</summary>
        public async Task AddShardsAsync(IEnumerable<int> shards, CancellationToken cancellationToken)
        {
            var added = new List<(int Shard, Guid Id)>();
            lock (_subscriptions)
            {
                foreach (var shard in shards)
                {
                    if (!_subscriptions.Any(x => x.Shard == shard))
                    {
                        added.Add((shard, Guid.NewGuid()));
                    }
                }

                _subscriptions.AddRange(added);
            }

            try
            {
                await RegisterAsync(added, cancellationToken);
            }
            catch (Exception e) when (e is not (OperationCanceledException or LogTrimmedException))
            {
                // A new shard may still be electing its first leader (a replica's silo paused or restarting): the
                // subscription stays in the list and the refresh loop registers it on its next tick, as it re-registers
                // every shard; the feed must not fail for a shard that is merely slow to start.
                LogRefreshFailed(_client._logger, e);
            }
        }

        private (int Shard, Guid Id)[] Subscriptions()
        {
            lock (_subscriptions)
            {
                return [.. _subscriptions];
            }
        }

        /// <summary>The buffered pushes in arrival order; taking one frees its room (count and bytes) for the next.</summary>
        public async IAsyncEnumerable<(ShardEventBatch Batch, long ReceivedMicros)> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var (batch, received, bytes) in _channel.Reader.ReadAllAsync(cancellationToken))
            {
                Interlocked.Add(ref _bufferedBytes, -bytes);
                Interlocked.Exchange(ref _room, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                yield return (batch, received);
            }
        }

        public async Task OnShardEvents(ShardEventBatch batch)
        {
            var now = SpecLogMetrics.StageDuration.Enabled ? SpecLogMetrics.NowMicros() : 0;
            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.PushTransit, batch.SentAtMicros, now);
            var bytes = SizeOf(batch);
            if (TryBuffer(batch, now, bytes))
            {
                return;
            }

            // The consumer is behind: wait a refresh interval for room (pushes and bytes), then tell the shard to drop
            // this subscription rather than hold the push (and, after Orleans' response timeout, push it again and
            // again). The refresh loop registers again from the consumer's position once it reads.
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            wait.CancelAfter(_client._options.SubscriptionRefresh);
            try
            {
                while (true)
                {
                    var room = Volatile.Read(ref _room).Task; // taken before the check, so a read in between is not missed
                    if (TryBuffer(batch, now, bytes))
                    {
                        return;
                    }

                    await room.WaitAsync(wait.Token);
                }
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                throw new SubscriberStalledException(
                    $"The consumer of shard {batch.Shard} is not reading: its buffer ({_client._options.SubscriptionBuffer} pushes, "
                    + $"{_client._options.SubscriptionBufferBytes >> 20} MB) stayed full for {_client._options.SubscriptionRefresh.TotalSeconds:0.###} s. "
                    + "It subscribes again from its position when it reads.");
            }
        }

        /// <summary>Buffers the push if there is room: fewer than SubscriptionBuffer pushes, and the bytes fit (one push always fits an empty buffer).</summary>
        private bool TryBuffer(ShardEventBatch batch, long now, long bytes)
        {
            var buffered = Volatile.Read(ref _bufferedBytes);
            if (buffered > 0 && buffered + bytes > _client._options.SubscriptionBufferBytes)
            {
                return false;
            }

            if (!_channel.Writer.TryWrite((batch, now, bytes)))
            {
                return false;
            }

            Interlocked.Add(ref _bufferedBytes, bytes);
            return true;
        }

        private static long SizeOf(ShardEventBatch batch)
        {
            var bytes = 64L;
            foreach (var e in batch.Entries)
            {
                bytes += 48 + (e.Payload?.Length ?? 0);
            }

            return bytes;
        }

        private bool Stalled => _channel.Reader.Count >= _client._options.SubscriptionBuffer
            || Volatile.Read(ref _bufferedBytes) >= _client._options.SubscriptionBufferBytes;

        public async ValueTask DisposeAsync()
        {
            // Stop re-registering, unsubscribe, and only then cancel an in-flight push, so shards do not take it for a
            // broken subscriber.
            await _stopRefresh.CancelAsync();
            try
            {
                await _refresh;
            }
            catch (OperationCanceledException)
            {
            }

            foreach (var (shard, id) in Subscriptions())
            {
                try
                {
                    await _client._routes.CallAsync(shard, g => g.UnsubscribeAsync(id), _client._options.SubscriptionRefresh, CancellationToken.None);
                }
                catch (Exception e)
                {
                    LogUnsubscribeFailed(_client._logger, e, shard);
                }
            }

            await _stop.CancelAsync();
            _client._grainFactory.DeleteObjectReference<IShardObserver>(_reference);
            _stop.Dispose();
            _stopRefresh.Dispose();
        }

        private Task RegisterAllAsync(CancellationToken cancellationToken) => RegisterAsync(Subscriptions(), cancellationToken);

        /// <summary>
        /// Registers the subscriptions with their shards, all at once and each bounded by the refresh interval (at
        /// least <see cref="MinRegisterWait"/>): a call stuck on a silo that died (until Orleans' response timeout,
        /// 30 s) holds neither the other shards' registrations nor the next try, which the refresh makes an interval later.
        /// </summary>
        private Task RegisterAsync(IEnumerable<(int Shard, Guid Id)> subscriptions, CancellationToken cancellationToken)
        {
            var patience = _client._options.SubscriptionRefresh;
            var wait = patience < MinRegisterWait ? MinRegisterWait : patience;
            return Task.WhenAll(subscriptions.Select(s => _client._routes
                .CallAsync(s.Shard, g => g.SubscribeAsync(_reference, s.Id, _position(s.Shard), _filter), patience, cancellationToken)
                .WaitAsync(wait, cancellationToken)));
        }

        private async Task RefreshLoopAsync()
        {
            using var timer = new PeriodicTimer(_client._options.SubscriptionRefresh);
            while (await timer.WaitForNextTickAsync(_stopRefresh.Token))
            {
                if (Stalled)
                {
                    continue;
                }

                try
                {
                    await RegisterAllAsync(_stopRefresh.Token);
                }
                catch (LogTrimmedException e)
                {
                    _channel.Writer.TryComplete(e); // the consumer fell behind a trim: its next records are gone
                    return;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogRefreshFailed(_client._logger, e);
                }
            }
        }
    }
}
