using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Bench.Peers;

/// <summary>
/// SpecLog under the peers workload: an in-process single-silo cluster (as the ordering scenario starts one), the
/// unreplicated sequencer (<see cref="SequencerReplication.Single"/>), real storage with fsync on. Append ack is
/// <see cref="SpecLogClient.AppendAsync(ReadOnlyMemory{byte}, int?, CancellationToken)"/>; the consumer is one <see cref="SpecLogClient.SubscribeAsync(long, CancellationToken)"/>: kind 0 is
/// speculative delivery (<see cref="SpeculativeRecord"/>, durable on its shard), kind 1 is confirmed delivery (the
/// <see cref="ConfirmedRange"/> that covers the record).
/// </summary>
internal sealed class SpecLogPeerLog : IPeerLog
{
    private readonly BenchCluster _bench;
    private readonly SpecLogClient _client;
    private Task? _consumer;

    private SpecLogPeerLog(BenchCluster bench)
    {
        _bench = bench;
        _client = bench.Client;
    }

    public string Name => "SpecLog";

    public IReadOnlyList<string> DeliveryKinds { get; } = ["speculative", "confirmed"];

    public static async Task<SpecLogPeerLog> StartAsync(int shards, bool fsync)
    {
        var bench = await BenchCluster.StartAsync(1, o =>
        {
            o.ShardCount = shards;
            o.Fsync = fsync;
            o.Replication.Mode = SequencerReplication.Single;
        });
        var client = bench.Client;
        var peer = new SpecLogPeerLog(bench);
        try
        {
            // Activate every shard and the sequencer before anything is measured.
            for (var s = 0; s < shards; s++)
            {
                await client.AppendAsync(PeerRecord.Create(16, -1), s);
            }
        }
        catch
        {
            await peer.DisposeAsync();
            throw;
        }

        return peer;
    }

    public Task AppendAsync(byte[] record, CancellationToken cancellationToken) => _client.AppendAsync(record, cancellationToken: cancellationToken);

    public Task StartConsumerAsync(Action<int, ReadOnlySpan<byte>> delivered, CancellationToken cancellationToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _consumer = Task.Run(async () =>
        {
            // Speculative records arrive in GSN order; remember their stamps until a confirmed range covers them.
            var pending = new Queue<(long Gsn, byte[] Header)>();
            try
            {
                var stream = _client.SubscribeAsync(0, cancellationToken).GetAsyncEnumerator(cancellationToken);
                await using (stream)
                {
                    var first = stream.MoveNextAsync();
                    started.TrySetResult();
                    while (await first)
                    {
                        switch (stream.Current)
                        {
                            case SpeculativeRecord r:
                                delivered(0, r.Payload.Span);
                                pending.Enqueue((r.Gsn, r.Payload[..Math.Min(PeerRecord.HEADER_BYTES, r.Payload.Length)].ToArray()));
                                break;
                            case ConfirmedRange c:
                                while (pending.Count > 0 && pending.Peek().Gsn < c.ToGsn)
                                {
                                    delivered(1, pending.Dequeue().Header);
                                }

                                break;
                        }

                        first = stream.MoveNextAsync();
                    }
                }
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
            }
            finally
            {
                started.TrySetResult();
            }
        }, CancellationToken.None);
        // The subscription attaches to the shards asynchronously; give it a moment before appends start.
        return started.Task.ContinueWith(_ => Task.Delay(200, CancellationToken.None), TaskScheduler.Default).Unwrap();
    }

    public async ValueTask DisposeAsync()
    {
        if (_consumer is not null)
        {
            try
            {
                await _consumer.WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (TimeoutException)
            {
            }
        }

        await _bench.DisposeAsync();
    }
}
