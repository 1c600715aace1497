using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;

namespace SpecLog.Bench.Peers;

/// <summary>
/// Redis Streams as a log: XADD through StackExchange.Redis (the ack is the XADD round trip; with
/// <c>appendfsync always</c> Redis replies only after the AOF write is fsync'd), and a consumer doing XREAD BLOCK.
/// StackExchange.Redis multiplexes one connection and never issues blocking commands, so the consumer speaks RESP on
/// its own socket: <c>XREAD BLOCK 1000 COUNT 1000 STREAMS key last-id</c> in a loop, a real blocking read that Redis
/// answers the moment an entry is added — no polling, so no polling bias.
/// </summary>
internal sealed class RedisStreamLog : IPeerLog
{
    private readonly ConnectionMultiplexer _connection;
    private readonly IDatabase _database;
    private readonly int _port;
    private readonly RedisKey _key;
    private readonly string _keyText;
    private Task? _consumer;
    private TcpClient? _consumerSocket;

    private RedisStreamLog(string name, ConnectionMultiplexer connection, int port)
    {
        Name = name;
        _connection = connection;
        _database = connection.GetDatabase();
        _port = port;
        _keyText = "speclog-peer-" + Guid.NewGuid().ToString("N")[..8];
        _key = _keyText;
    }

    public string Name { get; }

    public IReadOnlyList<string> DeliveryKinds { get; } = ["delivery"];

    public static async Task<RedisStreamLog> ConnectAsync(string name, int port)
    {
        var options = new ConfigurationOptions { AbortOnConnectFail = true, ConnectTimeout = 10_000, SyncTimeout = 30_000, AsyncTimeout = 30_000 };
        options.EndPoints.Add(IPAddress.Loopback, port);
        var connection = await ConnectionMultiplexer.ConnectAsync(options);
        return new RedisStreamLog(name, connection, port);
    }

    public async Task AppendAsync(byte[] record, CancellationToken cancellationToken) =>
        await _database.StreamAddAsync(_key, "d", record);

    public async Task StartConsumerAsync(Action<int, ReadOnlySpan<byte>> delivered, CancellationToken cancellationToken)
    {
        var socket = new TcpClient { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, _port, cancellationToken);
        _consumerSocket = socket;
        var stream = socket.GetStream();
        // Unblock the pending XREAD when the run is over.
        cancellationToken.Register(() => socket.Dispose());
        _consumer = Task.Run(async () =>
        {
            var reader = new RespReader(stream);
            var lastId = "0-0";
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    await stream.WriteAsync(RespReader.Command("XREAD", "BLOCK", "1000", "COUNT", "1000", "STREAMS", _keyText, lastId), cancellationToken);
                    var reply = await reader.ReadAsync(cancellationToken);
                    // [[key, [[id, [field, value, ...]], ...]]] or null on timeout.
                    if (reply is not List<object?> streams)
                    {
                        continue;
                    }

                    foreach (var s in streams.Cast<List<object?>>())
                    {
                        foreach (var entry in ((List<object?>)s[1]!).Cast<List<object?>>())
                        {
                            lastId = Encoding.ASCII.GetString((byte[])entry[0]!);
                            var fields = (List<object?>)entry[1]!;
                            delivered(0, (byte[])fields[1]!);
                        }
                    }
                }
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
            }
        }, CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        _consumerSocket?.Dispose();
        if (_consumer is not null)
        {
            await _consumer;
        }

        try
        {
            await _database.KeyDeleteAsync(_key);
        }
        catch (RedisException)
        {
        }

        await _connection.DisposeAsync();
    }

    /// <summary>The few parts of RESP2 a blocking XREAD needs: arrays, bulk strings, integers, simple strings, errors.</summary>
    private sealed class RespReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        public static byte[] Command(params string[] parts)
        {
            var text = new StringBuilder();
            text.Append(CultureInfo.InvariantCulture, $"*{parts.Length}\r\n");
            foreach (var part in parts)
            {
                text.Append(CultureInfo.InvariantCulture, $"${Encoding.UTF8.GetByteCount(part)}\r\n{part}\r\n");
            }

            return Encoding.UTF8.GetBytes(text.ToString());
        }

        public async Task<object?> ReadAsync(CancellationToken cancellationToken)
        {
            var line = await ReadLineAsync(cancellationToken);
            var type = line[0];
            var rest = line[1..];
            switch (type)
            {
                case '+':
                    return rest;
                case '-':
                    throw new InvalidOperationException("redis: " + rest);
                case ':':
                    return long.Parse(rest, CultureInfo.InvariantCulture);
                case '$':
                {
                    var length = int.Parse(rest, CultureInfo.InvariantCulture);
                    if (length < 0)
                    {
                        return null;
                    }

                    var value = new byte[length];
                    await ReadExactAsync(value, cancellationToken);
                    await ReadExactAsync(new byte[2], cancellationToken); // CRLF
                    return value;
                }

                case '*':
                {
                    var count = int.Parse(rest, CultureInfo.InvariantCulture);
                    if (count < 0)
                    {
                        return null;
                    }

                    var items = new List<object?>(count);
                    for (var i = 0; i < count; i++)
                    {
                        items.Add(await ReadAsync(cancellationToken));
                    }

                    return items;
                }

                default:
                    throw new InvalidOperationException($"redis: unexpected reply type '{type}'");
            }
        }

        private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                var span = _buffer.AsSpan(_start, _end - _start);
                var crlf = span.IndexOf("\r\n"u8);
                if (crlf >= 0)
                {
                    var line = Encoding.ASCII.GetString(span[..crlf]);
                    _start += crlf + 2;
                    return line;
                }

                await FillAsync(cancellationToken);
            }
        }

        private async Task ReadExactAsync(byte[] target, CancellationToken cancellationToken)
        {
            var copied = 0;
            while (copied < target.Length)
            {
                if (_start == _end)
                {
                    await FillAsync(cancellationToken);
                }

                var n = Math.Min(target.Length - copied, _end - _start);
                Buffer.BlockCopy(_buffer, _start, target, copied, n);
                _start += n;
                copied += n;
            }
        }

        private async Task FillAsync(CancellationToken cancellationToken)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                throw new InvalidOperationException("redis: reply line longer than the buffer");
            }

            var n = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (n == 0)
            {
                throw new EndOfStreamException("redis closed the connection");
            }

            _end += n;
        }
    }
}
