using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace SpecLog.Bench.Peers;

/// <summary>
/// NATS JetStream as a log: a file-storage stream, appends are JetStream publishes (the ack is the server's PubAck,
/// after the message is stored), and one push consumer (a durable-less consumer with a deliver subject, no acks) to
/// which the server pushes every message as it is stored.
/// </summary>
internal sealed class NatsJetStreamLog : IPeerLog
{
    private readonly NatsConnection _connection;
    private readonly NatsJSContext _js;
    private readonly string _stream = "speclog_peer_" + Guid.NewGuid().ToString("N")[..8];
    private Task? _consumer;

    private NatsJetStreamLog(string name, NatsConnection connection)
    {
        Name = name;
        _connection = connection;
        _js = new NatsJSContext(connection);
    }

    public string Name { get; }

    public IReadOnlyList<string> DeliveryKinds { get; } = ["delivery"];

    private string Subject => _stream + ".records";

    public static async Task<NatsJetStreamLog> ConnectAsync(string name, int port)
    {
        var connection = new NatsConnection(new NatsOpts { Url = $"nats://127.0.0.1:{port}", CommandTimeout = TimeSpan.FromSeconds(30), RequestTimeout = TimeSpan.FromSeconds(30) });
        await connection.ConnectAsync();
        var log = new NatsJetStreamLog(name, connection);
        await log._js.CreateStreamAsync(new StreamConfig(log._stream, [log.Subject]) { Storage = StreamConfigStorage.File });
        return log;
    }

    public async Task AppendAsync(byte[] record, CancellationToken cancellationToken)
    {
        var ack = await _js.PublishAsync(Subject, record, cancellationToken: cancellationToken);
        ack.EnsureSuccess();
    }

    public async Task StartConsumerAsync(Action<int, ReadOnlySpan<byte>> delivered, CancellationToken cancellationToken)
    {
        var deliver = "deliver." + _stream;
        var subscription = await _connection.SubscribeCoreAsync<byte[]>(deliver, cancellationToken: cancellationToken);
        await _js.CreateOrUpdateConsumerAsync(_stream, new ConsumerConfig
        {
            DeliverSubject = deliver,
            AckPolicy = ConsumerConfigAckPolicy.None,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        }, cancellationToken);
        _consumer = Task.Run(async () =>
        {
            try
            {
                await foreach (var message in subscription.Msgs.ReadAllAsync(cancellationToken))
                {
                    if (message.Data is { Length: >= PeerRecord.HEADER_BYTES } data)
                    {
                        delivered(0, data);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                await subscription.DisposeAsync();
            }
        }, CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        if (_consumer is not null)
        {
            try
            {
                await _consumer.WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException)
            {
            }
        }

        try
        {
            await _js.DeleteStreamAsync(_stream);
        }
        catch (NatsJSApiException)
        {
        }

        await _connection.DisposeAsync();
    }
}
