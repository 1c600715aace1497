using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace SpecLog.Bench.Peers;

/// <summary>A peer server this run started; stopped (and its directory removed) exactly once.</summary>
internal abstract class PeerServer : IDisposable
{
    private static readonly List<PeerServer> s_running = [];
    private static bool s_hooked;
    private int _stopped;

    protected PeerServer(string name, string directory)
    {
        Name = name;
        Directory = directory;
    }

    public string Name { get; }

    /// <summary>The temporary directory owned by this run (data, config, logs); deleted on stop.</summary>
    public string Directory { get; }

    public int Port { get; protected init; }

    /// <summary>Registers a started server so that it is stopped even if the run ends by Ctrl-C, SIGTERM or an exception.</summary>
    protected static void Track(PeerServer server)
    {
        lock (s_running)
        {
            s_running.Add(server);
            if (!s_hooked)
            {
                s_hooked = true;
                AppDomain.CurrentDomain.ProcessExit += (_, _) => StopAll();
                Console.CancelKeyPress += (_, _) => StopAll();
            }
        }
    }

    /// <summary>Stops every server still running (safe to call more than once, from any thread).</summary>
    public static void StopAll()
    {
        PeerServer[] servers;
        lock (s_running)
        {
            servers = [.. s_running];
        }

        foreach (var server in servers)
        {
            server.Dispose();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        try
        {
            StopProcess();
            Console.WriteLine($"  peers: stopped {Name}");
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"  peers: stopping {Name} failed: {ex.Message}");
        }
        finally
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"  peers: could not remove {Directory}: {ex.Message}");
            }

            lock (s_running)
            {
                s_running.Remove(this);
            }
        }
    }

    protected abstract void StopProcess();

    /// <summary>A new directory for one server under /tmp, readable by the service user.</summary>
    protected static string NewDirectory(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"speclog-peers-{prefix}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        System.IO.Directory.CreateDirectory(dir);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        return dir;
    }
}

/// <summary>A <c>redis-server</c> started directly with a generated config, on 127.0.0.1 and a free port.</summary>
internal sealed class RedisServer : PeerServer
{
    private readonly Process _process;

    private RedisServer(string name, string directory, int port, Process process)
        : base(name, directory)
    {
        Port = port;
        _process = process;
    }

    /// <summary>redis-server's path, installing the Debian package if it is missing; null (with the reason) if impossible.</summary>
    public static string? EnsureInstalled(out string message)
    {
        if (Shell.Find("redis-server") is { } found)
        {
            message = $"found {found}";
            return found;
        }

        if (!Shell.AptInstall(["redis-server"], out message))
        {
            return null;
        }

        return Shell.Find("redis-server") ?? throw new InvalidOperationException("redis-server was installed but is not on PATH");
    }

    /// <summary>Starts one instance: AOF off, or AOF with <c>appendfsync always</c> (fsync before every reply).</summary>
    public static async Task<RedisServer> StartAsync(string executable, bool aofAlways)
    {
        var name = aofAlways ? "redis (AOF, appendfsync always)" : "redis (AOF off)";
        var dir = NewDirectory(aofAlways ? "redis-aof-always" : "redis-aof-off");
        var port = Shell.FreeLoopbackPort();
        var config = new StringBuilder()
            .AppendLine("bind 127.0.0.1")
            .AppendLine(CultureInfo.InvariantCulture, $"port {port}")
            .AppendLine(CultureInfo.InvariantCulture, $"dir {dir}")
            .AppendLine("daemonize no")
            .AppendLine("protected-mode yes")
            .AppendLine("save \"\"")
            .AppendLine(CultureInfo.InvariantCulture, $"logfile {Path.Combine(dir, "redis.log")}")
            .AppendLine(aofAlways ? "appendonly yes" : "appendonly no")
            .AppendLine("appendfsync always")
            .ToString();
        var configPath = Path.Combine(dir, "redis.conf");
        await File.WriteAllTextAsync(configPath, config);
        var start = new ProcessStartInfo(executable) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(configPath);
        var process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new RedisServer(name, dir, port, process);
        Track(server);
        if (!await Shell.WaitForPortAsync(port, TimeSpan.FromSeconds(15), () => !process.HasExited))
        {
            var log = File.Exists(Path.Combine(dir, "redis.log")) ? Shell.Tail(await File.ReadAllTextAsync(Path.Combine(dir, "redis.log")), 600) : "";
            server.Dispose();
            throw new InvalidOperationException($"{name} did not accept connections on 127.0.0.1:{port}. {log}");
        }

        Console.WriteLine($"  peers: started {name}: {executable} pid {process.Id} on 127.0.0.1:{port}, dir {dir}");
        return server;
    }

    protected override void StopProcess()
    {
        Shell.Terminate(_process, TimeSpan.FromSeconds(10));
        _process.Dispose();
    }
}

/// <summary>A PostgreSQL cluster made with initdb and run with pg_ctl (as the postgres user when we are root), on 127.0.0.1.</summary>
internal sealed class PostgresServer : PeerServer
{
    private readonly string _pgCtl;
    private readonly string _dataDirectory;

    private PostgresServer(string directory, int port, string pgCtl, string dataDirectory, string version)
        : base($"PostgreSQL {version}", directory)
    {
        Port = port;
        _pgCtl = pgCtl;
        _dataDirectory = dataDirectory;
    }

    /// <summary>The directory with initdb/pg_ctl, installing the Debian packages if missing; null (with the reason) if impossible.</summary>
    public static string? EnsureInstalled(out string message)
    {
        if (FindBin() is { } found)
        {
            message = $"found {found}";
            return found;
        }

        if (!Shell.AptInstall(["postgresql"], out message))
        {
            return null;
        }

        return FindBin() ?? throw new InvalidOperationException("postgresql was installed but initdb was not found");
    }

    private static string? FindBin()
    {
        // Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin; prefer the newest.
        var versioned = System.IO.Directory.Exists("/usr/lib/postgresql")
            ? System.IO.Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => (Dir: Path.Combine(d, "bin"), Major: int.TryParse(Path.GetFileName(d), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0))
                .Where(x => File.Exists(Path.Combine(x.Dir, "initdb")) && File.Exists(Path.Combine(x.Dir, "pg_ctl")))
                .OrderByDescending(x => x.Major)
                .Select(x => x.Dir)
                .FirstOrDefault()
            : null;
        if (versioned is not null)
        {
            return versioned;
        }

        return Shell.Find("initdb") is { } initdb && Shell.Find("pg_ctl") is not null ? Path.GetDirectoryName(Path.GetFullPath(initdb)) : null;
    }

    /// <summary>initdb + pg_ctl start with fsync=on and synchronous_commit=on (commit returns after the WAL is flushed).</summary>
    public static async Task<PostgresServer> StartAsync(string binDirectory)
    {
        var initdb = Path.Combine(binDirectory, "initdb");
        var pgCtl = Path.Combine(binDirectory, "pg_ctl");
        var versionText = Shell.Run(pgCtl, ["--version"]).Output.Trim();
        // "pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": the first dotted number is the version.
        var version = System.Text.RegularExpressions.Regex.Match(versionText, @"\d+(\.\d+)*").Value is { Length: > 0 } v ? v : "?";
        if (int.TryParse(version.Split('.')[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var major) && major < 15)
        {
            throw new InvalidOperationException($"PostgreSQL 15 or newer is needed; found {versionText}");
        }

        var dir = NewDirectory("postgres");
        var data = Path.Combine(dir, "data");
        var sockets = Path.Combine(dir, "sockets");
        System.IO.Directory.CreateDirectory(data);
        System.IO.Directory.CreateDirectory(sockets);
        if (Shell.IsRoot)
        {
            var chown = Shell.Run("chown", ["-R", "postgres:postgres", data, sockets]);
            if (!chown.Ok)
            {
                System.IO.Directory.Delete(dir, recursive: true);
                throw new InvalidOperationException($"chown to the postgres user failed: {chown.Output.Trim()}");
            }
        }

        var init = Shell.RunAsPostgres(initdb, ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"], TimeSpan.FromMinutes(2));
        if (!init.Ok)
        {
            System.IO.Directory.Delete(dir, recursive: true);
            throw new InvalidOperationException($"initdb failed (exit {init.ExitCode}): {Shell.Tail(init.Output, 600)}");
        }

        var port = Shell.FreeLoopbackPort();
        var options = string.Create(CultureInfo.InvariantCulture,
            $"-p {port} -c listen_addresses=127.0.0.1 -k {sockets} -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=200");
        var server = new PostgresServer(dir, port, pgCtl, data, version);
        Track(server);
        var start = Shell.RunAsPostgres(pgCtl, ["-D", data, "-l", Path.Combine(data, "server.log"), "-o", options, "-w", "-t", "60", "start"], TimeSpan.FromMinutes(2));
        if (!start.Ok || !await Shell.WaitForPortAsync(port, TimeSpan.FromSeconds(30)))
        {
            var log = File.Exists(Path.Combine(data, "server.log")) ? Shell.Tail(await File.ReadAllTextAsync(Path.Combine(data, "server.log")), 600) : "";
            server.Dispose();
            throw new InvalidOperationException($"pg_ctl start failed (exit {start.ExitCode}): {Shell.Tail(start.Output, 400)} {log}");
        }

        Console.WriteLine($"  peers: started {server.Name}: {pgCtl} on 127.0.0.1:{port}, data {data}{(Shell.IsRoot ? " (as user postgres)" : "")}, fsync=on synchronous_commit=on");
        return server;
    }

    public string ConnectionString(int maxPoolSize) => string.Create(CultureInfo.InvariantCulture,
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Maximum Pool Size={maxPoolSize};No Reset On Close=true;Timeout=30;Command Timeout=60");

    protected override void StopProcess()
    {
        var stop = Shell.RunAsPostgres(_pgCtl, ["-D", _dataDirectory, "-m", "fast", "-w", "-t", "30", "stop"], TimeSpan.FromSeconds(60));
        if (!stop.Ok)
        {
            Shell.RunAsPostgres(_pgCtl, ["-D", _dataDirectory, "-m", "immediate", "-w", "stop"], TimeSpan.FromSeconds(30));
        }
    }
}
