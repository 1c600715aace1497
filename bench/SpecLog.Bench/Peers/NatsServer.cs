using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace SpecLog.Bench.Peers;

/// <summary>
/// A <c>nats-server</c> with JetStream (file storage) started directly with a generated config on 127.0.0.1 and a free
/// port. JetStream fsyncs its files every <c>sync_interval</c> (two minutes by default); servers from 2.10 accept
/// <c>sync_interval: always</c> (fsync before every acknowledgement). The server is asked for it first; when it refuses
/// the field (Debian's 2.9.10 does), it runs with the default and <see cref="Durability"/> says so.
/// </summary>
internal sealed class NatsServer : PeerServer
{
    private readonly Process _process;

    private NatsServer(string name, string directory, int port, Process process, string durability)
        : base(name, directory)
    {
        Port = port;
        _process = process;
        Durability = durability;
    }

    /// <summary>What an acknowledged publish survives with this server's settings.</summary>
    public string Durability { get; }

    /// <summary>nats-server's path, installing the Debian package if it is missing; null (with the reason) if impossible.</summary>
    public static string? EnsureInstalled(out string message)
    {
        if (Shell.Find("nats-server") is { } found)
        {
            message = $"found {found}";
            return found;
        }

        if (!Shell.AptInstall(["nats-server"], out message))
        {
            return null;
        }

        return Shell.Find("nats-server") ?? throw new InvalidOperationException("nats-server was installed but was not found");
    }

    /// <summary>Starts one server with JetStream on file storage, with per-message fsync when the server supports it.</summary>
    public static async Task<NatsServer> StartAsync(string executable)
    {
        var version = Shell.Run(executable, ["--version"]).Output.Trim();
        foreach (var always in new[] { true, false })
        {
            var dir = NewDirectory("nats");
            var port = Shell.FreeLoopbackPort();
            var config = new StringBuilder()
                .AppendLine(CultureInfo.InvariantCulture, $"listen: 127.0.0.1:{port}")
                .AppendLine("jetstream {")
                .AppendLine(CultureInfo.InvariantCulture, $"  store_dir: \"{Path.Combine(dir, "jetstream")}\"")
                .AppendLine(always ? "  sync_interval: always" : "")
                .AppendLine("}")
                .ToString();
            var configPath = Path.Combine(dir, "nats.conf");
            await File.WriteAllTextAsync(configPath, config);
            var check = Shell.Run(executable, ["-c", configPath, "-t"]);
            if (always && !check.Ok)
            {
                System.IO.Directory.Delete(dir, recursive: true); // this version does not know sync_interval
                continue;
            }

            var start = new ProcessStartInfo(executable) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(configPath);
            var process = Process.Start(start) ?? throw new InvalidOperationException("nats-server did not start");
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var durability = always
                ? "JetStream file storage, sync_interval always: fsync'd before every acknowledgement"
                : $"JetStream file storage; {version} refuses `sync_interval: always`, so files are fsync'd every 2 minutes (the default): an acknowledged publish survives a server crash, not a power loss";
            var server = new NatsServer($"NATS JetStream ({(always ? "sync always" : "sync every 2 min")})", dir, port, process, durability);
            Track(server);
            if (!await Shell.WaitForPortAsync(port, TimeSpan.FromSeconds(15), () => !process.HasExited))
            {
                server.Dispose();
                throw new InvalidOperationException($"nats-server did not accept connections on 127.0.0.1:{port} ({version}).");
            }

            Console.WriteLine($"  peers: started {server.Name}: {executable} ({version}) pid {process.Id} on 127.0.0.1:{port}, dir {dir}; {durability}");
            return server;
        }

        throw new InvalidOperationException("unreachable");
    }

    protected override void StopProcess()
    {
        Shell.Terminate(_process, TimeSpan.FromSeconds(10));
        _process.Dispose();
    }
}
