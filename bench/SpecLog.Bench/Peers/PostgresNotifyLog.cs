using Npgsql;
using NpgsqlTypes;

namespace SpecLog.Bench.Peers;

/// <summary>
/// PostgreSQL as a log: each append is one statement that inserts the record into a table and calls pg_notify with it,
/// in one transaction (autocommit), so the ack is the commit (<c>synchronous_commit=on</c>: WAL flushed) and the
/// notification leaves at commit. One connection LISTENs and is the consumer. The notification carries the record
/// base64-encoded (NOTIFY payloads are limited to 8,000 bytes: records over 5,900 bytes send only their 16-byte header).
/// Appends use a connection pool (open loop: several appends of one appender can be in flight).
/// </summary>
internal sealed class PostgresNotifyLog : IPeerLog
{
    private const string CHANNEL = "speclog_peer";
    private const int MAX_NOTIFY_RECORD = 5900;
    private readonly NpgsqlDataSource _appends;
    private readonly string _connectionString;
    private NpgsqlConnection? _listener;
    private Task? _consumer;

    private PostgresNotifyLog(string name, NpgsqlDataSource appends, string connectionString)
    {
        Name = name;
        _appends = appends;
        _connectionString = connectionString;
    }

    public string Name { get; }

    public IReadOnlyList<string> DeliveryKinds { get; } = ["delivery"];

    public static async Task<PostgresNotifyLog> ConnectAsync(string name, string connectionString)
    {
        var appends = NpgsqlDataSource.Create(connectionString);
        await using (var setup = appends.CreateCommand(
            "CREATE TABLE IF NOT EXISTS peer_log (id bigserial PRIMARY KEY, payload bytea NOT NULL); TRUNCATE peer_log;"))
        {
            await setup.ExecuteNonQueryAsync();
        }

        return new PostgresNotifyLog(name, appends, connectionString);
    }

    public async Task AppendAsync(byte[] record, CancellationToken cancellationToken)
    {
        await using var command = _appends.CreateCommand(
            "WITH ins AS (INSERT INTO peer_log (payload) VALUES ($1) RETURNING id) SELECT pg_notify('" + CHANNEL + "', $2) FROM ins");
        command.Parameters.Add(new NpgsqlParameter { Value = record, NpgsqlDbType = NpgsqlDbType.Bytea });
        var notified = record.Length <= MAX_NOTIFY_RECORD ? record : record.AsSpan(0, PeerRecord.HEADER_BYTES).ToArray();
        command.Parameters.Add(new NpgsqlParameter { Value = Convert.ToBase64String(notified), NpgsqlDbType = NpgsqlDbType.Text });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task StartConsumerAsync(Action<int, ReadOnlySpan<byte>> delivered, CancellationToken cancellationToken)
    {
        var listener = new NpgsqlConnection(_connectionString + ";Pooling=false;Keepalive=0");
        await listener.OpenAsync(cancellationToken);
        listener.Notification += (_, e) => delivered(0, Convert.FromBase64String(e.Payload));
        await using (var listen = new NpgsqlCommand("LISTEN " + CHANNEL, listener))
        {
            await listen.ExecuteNonQueryAsync(cancellationToken);
        }

        _listener = listener;
        _consumer = Task.Run(async () =>
        {
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    await listener.WaitAsync(cancellationToken);
                }
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
            }
        }, CancellationToken.None);
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

        if (_listener is not null)
        {
            await _listener.DisposeAsync();
        }

        await _appends.DisposeAsync();
    }
}
