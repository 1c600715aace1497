using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The silo executable running as a child process (<c>dotnet SpecLog.Silo.dll</c>) on given ports and data directory,
/// with its output captured. Disposing kills it if it still runs, so no test leaks a process.
/// </summary>
internal sealed class SiloProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;
    private readonly string _name;

    private SiloProcess(Process process, ConcurrentQueue<string> output, string name, int siloPort, int gatewayPort)
    {
        _process = process;
        _output = output;
        _name = name;
        SiloPort = siloPort;
        GatewayPort = gatewayPort;
    }

    public int SiloPort { get; }

    public int GatewayPort { get; }

    /// <summary>Whether this process printed its "SpecLog silo up" line (its log has recovered).</summary>
    public bool IsUp => _output.Any(l => l.StartsWith($"[{_name} out] SpecLog silo up", StringComparison.Ordinal));

    public bool HasExited => _process.HasExited;

    /// <summary>The exit code, once <see cref="HasExited"/>.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Waits until the process exited and its output was read to the end.</summary>
    public Task WaitForExitAsync(CancellationToken cancellationToken) => _process.WaitForExitAsync(cancellationToken);

    public int Id => _process.Id;

    /// <summary>Everything the process wrote so far, stdout and stderr interleaved, each line tagged.</summary>
    public string Output => string.Join(Environment.NewLine, _output);

    /// <summary>Starts the silo with the dashboard off, <paramref name="shards"/> shards and fsync on.</summary>
    public static SiloProcess Start(string name, string dataDirectory, int shards, ConcurrentQueue<string> output, params string[] settings) =>
        Start(name, dataDirectory, shards, output, FreePorts(), settings);

    /// <summary>
    /// Starts data node <paramref name="node"/> of a cluster whose membership is the Azure table at
    /// <paramref name="connectionString"/> (<c>--environment Cluster</c>: three nodes, replicated shards, Copilot),
    /// named <paramref name="name"/> in the output; <paramref name="settings"/> are added to the command line.
    /// </summary>
    public static SiloProcess StartClusterNode(
        string name, string node, string dataDirectory, int shards, ConcurrentQueue<string> output, (int Silo, int Gateway) ports, string clusterId, string connectionString, params string[] settings) =>
        Start(
            name,
            dataDirectory,
            shards,
            output,
            ports,
            ["--environment=Cluster", $"--Silo:NodeName={node}", $"--Silo:ClusterId={clusterId}", $"--Silo:ServiceId={clusterId}", $"--Silo:AzureStorage:ConnectionString={connectionString}", .. settings]);

    /// <summary>Starts the silo on the given silo and gateway ports (a restart on the same ports supersedes the dead process at once).</summary>
    public static SiloProcess Start(string name, string dataDirectory, int shards, ConcurrentQueue<string> output, (int Silo, int Gateway) ports, params string[] settings)
    {
        var (siloPort, gatewayPort) = ports;
        string[] args =
        [
            $"--SpecLog:DataDirectory={dataDirectory}",
            $"--SpecLog:ShardCount={shards}",
            "--SpecLog:Fsync=true",
            $"--Silo:SiloPort={siloPort}",
            $"--Silo:GatewayPort={gatewayPort}",
            "--Silo:Dashboard:Enabled=false",
            "--environment=Production",
            .. settings,
        ];
        return StartWith(name, Path.GetDirectoryName(dataDirectory)!, output, ports, new Dictionary<string, string>(), args);
    }

    /// <summary>
    /// Starts the silo with <paramref name="environment"/> added to its environment and <paramref name="args"/> as its
    /// whole command line (no settings of its own), in <paramref name="workingDirectory"/>; <paramref name="ports"/> are
    /// the silo and gateway ports those settings give it.
    /// </summary>
    public static SiloProcess StartWith(
        string name, string workingDirectory, ConcurrentQueue<string> output, (int Silo, int Gateway) ports, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var dll = LocateSiloDll();
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // Settings of the developer's shell must not leak into the test.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("SPECLOG_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Add(output, name, "out", e.Data);
        process.ErrorDataReceived += (_, e) => Add(output, name, "err", e.Data);
        output.Enqueue($"[{name}] {string.Concat(environment.Select(e => $"{e.Key}={e.Value} "))}dotnet {string.Join(' ', start.ArgumentList)}");
        if (!process.Start())
        {
            throw new InvalidOperationException("Could not start the silo process.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new SiloProcess(process, output, name, ports.Silo, ports.Gateway);
    }

    /// <summary>SIGKILL on Linux (TerminateProcess on Windows): no shutdown code runs, nothing is flushed.</summary>
    public void KillHard()
    {
        _output.Enqueue($"[{_name}] --- kill -9 (pid {_process.Id}) ---");
        _process.Kill(entireProcessTree: true);
        if (!_process.WaitForExit(TimeSpan.FromSeconds(15)))
        {
            throw new TimeoutException($"Silo process {_process.Id} did not exit after being killed.");
        }
    }

    /// <summary>SIGTERM, as an orchestrator stops a pod: the silo shuts down gracefully; returns once it exited.</summary>
    public async Task StopGracefullyAsync(TimeSpan timeout)
    {
        _output.Enqueue($"[{_name}] --- SIGTERM (pid {_process.Id}) ---");
        using (var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", $"{_process.Id}" }, UseShellExecute = false })!)
        {
            await kill.WaitForExitAsync();
        }

        using var wait = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"Silo process {_process.Id} did not stop within {timeout} of SIGTERM.");
        }
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(TimeSpan.FromSeconds(15));
            }
        }
        catch (InvalidOperationException)
        {
            // Never started or already gone.
        }

        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The silo's dll: <c>SPECLOG_SILO_DLL</c> if set, else the path recorded at build time (assembly metadata
    /// <c>SpecLogSiloDll</c>), else src/SpecLog.Silo/bin/&lt;Configuration&gt;/net10.0 above the test's output.
    /// </summary>
    public static string LocateSiloDll()
    {
        var candidates = new List<string>();
        var fromEnvironment = Environment.GetEnvironmentVariable("SPECLOG_SILO_DLL");
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            candidates.Add(fromEnvironment);
        }

        var assembly = typeof(SiloProcess).Assembly;
        var recorded = assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "SpecLogSiloDll")?.Value;
        if (!string.IsNullOrWhiteSpace(recorded))
        {
            candidates.Add(recorded);
        }

        var configuration = assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            candidates.Add(Path.Combine(dir.FullName, "src", "SpecLog.Silo", "bin", configuration, "net10.0", "SpecLog.Silo.dll"));
        }

        return candidates.FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException("SpecLog.Silo.dll not found; build src/SpecLog.Silo first. Looked at:" + Environment.NewLine + string.Join(Environment.NewLine, candidates));
    }

    /// <summary>Two distinct free loopback ports, for the silo and the gateway.</summary>
    public static (int Silo, int Gateway) FreePorts()
    {
        int siloPort = FreePort(), gatewayPort = FreePort();
        while (gatewayPort == siloPort)
        {
            gatewayPort = FreePort();
        }

        return (siloPort, gatewayPort);
    }

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void Add(ConcurrentQueue<string> output, string name, string stream, string? line)
    {
        if (line is not null)
        {
            output.Enqueue($"[{name} {stream}] {line}");
        }
    }
}
