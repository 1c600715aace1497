using System.Globalization;
using System.Net;

namespace SpecLog.Quickstart;

/// <summary>The command line of the quickstart.</summary>
internal sealed class QuickstartOptions
{
    public const string Usage = """
        SpecLog quickstart: concurrent producers append at a fixed total rate (open loop) while a subscriber follows the
        whole log speculatively; prints append, speculative-delivery and confirmation latencies and checks that every
        acknowledged append was delivered at its acknowledged GSN.

        Usage: dotnet run --project samples/SpecLog.Quickstart -- [options]

          --gateway <port|ip:port>  Orleans gateway of the silo (default 30000 on 127.0.0.1)
          --cluster-id <id>         Orleans cluster id (default dev)
          --service-id <id>         Orleans service id (default dev)
          --embedded                run a silo inside this process on free ports and a temporary data directory
          --shards <n>              shards of the embedded silo (default 4)
          --data <dir>              data directory of the embedded silo (default: a temporary one, deleted at exit)
          --no-fsync                embedded silo without fsync (faster, not durable; for comparison only)
          --in-silo-client          embedded: use the silo's own SpecLogClient instead of a client through the gateway
          --producers <n>           concurrent producers (default 4)
          --rate <appends/s>        total append rate over all producers (default 2000)
          --duration <seconds>      how long producers append (default 10)
          --payload <bytes>         record size, at least 32 (default 64)
          --connect-timeout <s>     how long to retry connecting to the gateway (default 15)
          --quiet                   no per-second lines
          -h, --help                this text
        """;

    public IPEndPoint Gateway { get; private set; } = new(IPAddress.Loopback, 30000);

    public string ClusterId { get; private set; } = "dev";

    public string ServiceId { get; private set; } = "dev";

    public bool Embedded { get; private set; }

    public int Shards { get; private set; } = 4;

    public string? DataDirectory { get; private set; }

    public bool Fsync { get; private set; } = true;

    public bool InSiloClient { get; private set; }

    public int Producers { get; private set; } = 4;

    public double Rate { get; private set; } = 2000;

    public TimeSpan Duration { get; private set; } = TimeSpan.FromSeconds(10);

    public int PayloadSize { get; private set; } = 64;

    public TimeSpan ConnectTimeout { get; private set; } = TimeSpan.FromSeconds(15);

    public bool Quiet { get; private set; }

    public bool Help { get; private set; }

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> with a readable message on bad input.</summary>
    public static QuickstartOptions Parse(string[] args)
    {
        var o = new QuickstartOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            string Value()
            {
                if (i + 1 >= args.Length)
                {
                    throw new ArgumentException($"{arg} needs a value.");
                }

                return args[++i];
            }

            switch (arg)
            {
                case "--gateway":
                    o.Gateway = ParseGateway(Value());
                    break;
                case "--cluster-id":
                    o.ClusterId = Value();
                    break;
                case "--service-id":
                    o.ServiceId = Value();
                    break;
                case "--embedded":
                    o.Embedded = true;
                    break;
                case "--shards":
                    o.Shards = ParseInt(arg, Value(), 1, 4096);
                    break;
                case "--data":
                    o.DataDirectory = Value();
                    break;
                case "--no-fsync":
                    o.Fsync = false;
                    break;
                case "--in-silo-client":
                    o.InSiloClient = true;
                    break;
                case "--producers":
                    o.Producers = ParseInt(arg, Value(), 1, 1024);
                    break;
                case "--rate":
                    o.Rate = ParseDouble(arg, Value(), 1, 10_000_000);
                    break;
                case "--duration":
                    o.Duration = TimeSpan.FromSeconds(ParseDouble(arg, Value(), 0.1, 24 * 3600));
                    break;
                case "--payload":
                    o.PayloadSize = ParseInt(arg, Value(), RecordPayload.HeaderSize, 1 << 20);
                    break;
                case "--connect-timeout":
                    o.ConnectTimeout = TimeSpan.FromSeconds(ParseDouble(arg, Value(), 0.1, 3600));
                    break;
                case "--quiet":
                    o.Quiet = true;
                    break;
                case "-h" or "--help" or "-?":
                    o.Help = true;
                    break;
                default:
                    throw new ArgumentException($"Unknown option '{arg}'.");
            }
        }

        if (o.InSiloClient && !o.Embedded)
        {
            throw new ArgumentException("--in-silo-client needs --embedded.");
        }

        return o;
    }

    private static IPEndPoint ParseGateway(string value)
    {
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536)
        {
            return new IPEndPoint(IPAddress.Loopback, port);
        }

        if (IPEndPoint.TryParse(value, out var endpoint) && endpoint.Port != 0)
        {
            return endpoint;
        }

        var colon = value.LastIndexOf(':');
        if (colon > 0 && int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and < 65536)
        {
            var host = value[..colon];
            var address = host == "localhost"
                ? IPAddress.Loopback
                : Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
                    ?? throw new ArgumentException($"--gateway: cannot resolve '{host}'.");
            return new IPEndPoint(address, port);
        }

        throw new ArgumentException($"--gateway expects a port or ip:port (got '{value}').");
    }

    private static int ParseInt(string name, string value, int min, int max) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ArgumentException($"{name} expects an integer in [{min}, {max}] (got '{value}').");

    private static double ParseDouble(string name, string value, double min, double max) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && x >= min && x <= max
            ? x
            : throw new ArgumentException($"{name} expects a number in [{min}, {max}] (got '{value}').");
}
