using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using HdrHistogram;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Orleans.Hosting;
using Orleans.Placement;
using SpecLog.Bench.Reporting;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// The machine's floors, measured by the same tool as everything else so that every result can be read against them:
/// (1) a 100-byte pwrite into a pre-zeroed file plus fdatasync, (2) a loopback TCP round trip of 100 bytes (one
/// connection, NoDelay, blocking ping-pong), (3) an Orleans grain call to a grain in the caller's silo and (4) to a grain
/// in a second silo of the same process over real loopback TCP. Each is <c>--samples</c> sequential operations after a
/// warm-up (capped at <c>--max-seconds</c> each); the two Orleans calls alternate so that machine load hits both alike.
/// Writes <c>&lt;out&gt;/floors.md</c> and <c>floors.json</c> and merges the p50 figures into <c>&lt;out&gt;/latest.json</c>.
/// Options: --samples N (default 5000), --out DIR (default bench/results, relative to the working directory),
/// --dir PATH (where the fdatasync file goes, default a fresh folder under the temp directory), --max-seconds S (default 20).
/// </summary>
public sealed class FloorsScenario : IScenario
{
    /// <summary>Measures the machine (or the storage alone), not the log: no JIT warm-up of the log first.</summary>
    public bool UsesLog => false;

    private const int MessageSize = 100;
    private const int RecordStride = 128; // a 100-byte payload's frame in DurableLog
    private const long SyncFileSize = 4L << 20;

    /// <summary>The figures this scenario contributes to latest.json.</summary>
    private static readonly string[] s_latestKeys =
        ["fdatasync_p50_us", "loopback_tcp_rtt_p50_us", "orleans_local_call_p50_us", "orleans_cross_silo_call_p50_us"];

    public string Name => "floors";

    public string Description =>
        "machine floors: fdatasync of a 100 B write, loopback TCP RTT, Orleans call in one silo and across two "
        + "[--samples 5000 --out bench/results --dir PATH --max-seconds 20]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        int samples = args.GetInt("samples", 5000);
        double maxSeconds = args.GetDouble("max-seconds", 20);
        string outDir = args.Get("out") ?? Path.Combine("bench", "results");
        string parent = Path.GetFullPath(args.Get("dir") ?? Path.Combine(Path.GetTempPath(), "speclog-bench"));
        if (samples < 1 || maxSeconds <= 0)
        {
            throw new ArgumentException("--samples and --max-seconds must be positive.");
        }

        int warmup = Math.Clamp(samples / 10, 50, 1000);
        var report = new BenchReport("Floors: the machine's limits");
        Console.WriteLine($"floors: {samples} samples each after {warmup} warm-up, at most {maxSeconds.ToString(CultureInfo.InvariantCulture)} s each");
        Console.WriteLine($"machine: {report.Machine.Describe()}");

        string dataDir = Path.Combine(parent, $"floors-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dataDir);
        LatencySummary fdatasync;
        try
        {
            fdatasync = await Task.Run(() => MeasureFdatasync(dataDir, samples, warmup, maxSeconds));
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }

        LatencySummary tcp = await Task.Run(() => MeasureLoopbackTcp(samples, warmup, maxSeconds));
        (LatencySummary local, LatencySummary cross) = await MeasureOrleansAsync(samples, warmup, maxSeconds);

        ReportSection floors = report.AddSection("Floors");
        floors.AddText(
            $"Each floor is up to {samples} sequential operations after {warmup} of warm-up, stopped early after {maxSeconds.ToString(CultureInfo.InvariantCulture)} s "
            + "(the samples column says how many were taken), each timed with Stopwatch into an HdrHistogram of 0.1 µs ticks (3 significant digits).");
        ReportTable table = floors.AddTable(LatencySummary.Columns("floor"));
        table.AddRow(fdatasync.ToRow("pwrite 100 B + fdatasync (pre-zeroed file)"));
        table.AddRow(tcp.ToRow("loopback TCP round trip, 100 B each way"));
        table.AddRow(local.ToRow("Orleans grain call, same silo"));
        table.AddRow(cross.ToRow("Orleans grain call, other silo (loopback TCP)"));

        ReportSection method = report.AddSection("How each floor is measured");
        method.AddText(
            $"- **fdatasync**: a {SyncFileSize >> 20} MiB file in `{parent}` ({FileSystemOf(parent)}) is zero-filled and synced first, "
            + $"so no write changes file size or extents; each sample is one {MessageSize}-byte pwrite at the next {RecordStride}-byte offset "
            + "(as the durable log lays out 100-byte records) followed by fdatasync(2).\n"
            + $"- **loopback TCP**: one 127.0.0.1 connection with TCP_NODELAY; the client sends {MessageSize} bytes and blocks until a "
            + "dedicated echo thread has sent them back.\n"
            + "- **Orleans**: two silos in this process (`UseLocalhostClustering` on free ports, the second joined to the first over TCP), "
            + $"a `[PreferLocalPlacement]` echo grain activated on each; the first silo's `IGrainFactory` calls `EchoAsync({MessageSize}-byte array)` "
            + "on the grain in its own silo and on the one in the other silo, alternately, awaiting each call.");
        ReportSection notes = report.AddSection("Reading the floors");
        string Us(double microseconds) => microseconds.ToString("F0", CultureInfo.InvariantCulture);
        notes.AddText(
            $"A cross-silo call costs {Us(cross.P50Us - local.P50Us)} µs more than a local one at p50 (the loopback TCP round trip alone is {Us(tcp.P50Us)} µs); "
            + $"a durable write costs {Us(fdatasync.P50Us)} µs at p50. No append acknowledged after an fdatasync can beat the fdatasync floor, "
            + "and no path through another silo can beat the cross-silo call floor. "
            + $"Load average {FormatLoad(report.Machine.LoadAverageStart)} at start on {report.Machine.Cores} cores: other work on the machine shows in the tails.");

        fdatasync.AddFigures(report, "fdatasync");
        tcp.AddFigures(report, "loopback_tcp_rtt");
        local.AddFigures(report, "orleans_local_call");
        cross.AddFigures(report, "orleans_cross_silo_call");

        (string markdownPath, string jsonPath) = await report.WriteAsync(outDir, "floors");
        string latestPath = Path.Combine(Path.GetFullPath(outDir), "latest.json");
        try
        {
            await report.MergeFiguresAsync(latestPath, s_latestKeys);
        }
        catch (InvalidDataException ex)
        {
            Console.Error.WriteLine($"wrote {markdownPath} and {jsonPath}, but left {latestPath} alone: {ex.Message}");
            return 1;
        }

        Console.WriteLine();
        Console.WriteLine(report.ToMarkdown());
        Console.WriteLine($"wrote {markdownPath}, {jsonPath}; merged {string.Join(", ", s_latestKeys)} into {latestPath}");
        return 0;
    }

    private static LatencySummary MeasureFdatasync(string dir, int samples, int warmup, double maxSeconds)
    {
        var progress = new ProgressLine("fdatasync", samples);
        var record = new byte[MessageSize];
        new Random(42).NextBytes(record);
        using SafeFileHandle handle = File.OpenHandle(Path.Combine(dir, "floor.dat"), FileMode.CreateNew, FileAccess.ReadWrite);
        var zeros = new byte[1 << 20];
        for (long offset = 0; offset < SyncFileSize; offset += zeros.Length)
        {
            RandomAccess.Write(handle, zeros, offset);
        }

        RandomAccess.FlushToDisk(handle);
        long position = 0;
        LatencySummary summary = Measure(progress, samples, warmup, maxSeconds, () =>
        {
            RandomAccess.Write(handle, record, position);
            Native.Fdatasync(handle);
            position = (position + RecordStride) % SyncFileSize;
        });
        progress.Done(summary.ToString());
        return summary;
    }

    private static LatencySummary MeasureLoopbackTcp(int samples, int warmup, double maxSeconds)
    {
        var progress = new ProgressLine("loopback TCP", samples);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.Connect(listener.LocalEndPoint!);
        using Socket server = listener.Accept();
        server.NoDelay = true;

        var echo = new Thread(() =>
        {
            var buffer = new byte[MessageSize];
            while (ReceiveExactly(server, buffer))
            {
                server.Send(buffer);
            }
        })
        { IsBackground = true, Name = "floors-echo" };
        echo.Start();

        var message = new byte[MessageSize];
        var reply = new byte[MessageSize];
        LatencySummary summary = Measure(progress, samples, warmup, maxSeconds, () =>
        {
            client.Send(message);
            if (!ReceiveExactly(client, reply))
            {
                throw new IOException("The echo side closed the connection.");
            }
        });
        client.Shutdown(SocketShutdown.Send);
        echo.Join();
        progress.Done(summary.ToString());
        return summary;
    }

    private static bool ReceiveExactly(Socket socket, byte[] buffer)
    {
        int received = 0;
        while (received < buffer.Length)
        {
            int n = socket.Receive(buffer, received, buffer.Length - received, SocketFlags.None);
            if (n == 0)
            {
                return false;
            }

            received += n;
        }

        return true;
    }

    /// <summary><paramref name="warmup"/> unrecorded operations, then up to <paramref name="samples"/> recorded ones or <paramref name="maxSeconds"/>.</summary>
    private static LatencySummary Measure(ProgressLine progress, int samples, int warmup, double maxSeconds, Action op)
    {
        for (int i = 0; i < warmup; i++)
        {
            op();
        }

        LongHistogram histogram = LatencySummary.NewHistogram();
        long deadline = Stopwatch.GetTimestamp() + (long)(maxSeconds * Stopwatch.Frequency);
        for (int i = 0; i < samples && Stopwatch.GetTimestamp() < deadline; i++)
        {
            long start = Stopwatch.GetTimestamp();
            op();
            LatencySummary.RecordSince(histogram, start);
            progress.Report(i + 1);
        }

        return LatencySummary.FromTicks(histogram);
    }

    private static async Task<(LatencySummary Local, LatencySummary Cross)> MeasureOrleansAsync(int samples, int warmup, double maxSeconds)
    {
        var progress = new ProgressLine("Orleans calls", samples);
        int[] ports = FreePorts(4);
        progress.Step($"starting silo 1 (silo port {ports[0]}, gateway {ports[1]})");
        IHost first = await StartSiloAsync(ports[0], ports[1], primary: null);
        IHost? second = null;
        string? doneText = null;
        try
        {
            progress.Step($"starting silo 2 (silo port {ports[2]}, gateway {ports[3]}), joining silo 1");
            second = await StartSiloAsync(ports[2], ports[3], new IPEndPoint(IPAddress.Loopback, ports[0]));
            await WaitForActiveSilosAsync(first, 2);
            await WaitForActiveSilosAsync(second, 2);

            // PreferLocalPlacement: each grain is activated in the silo whose factory makes its first call.
            var caller = first.Services.GetRequiredService<IGrainFactory>();
            string firstSilo = first.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToString();
            string secondSilo = second.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToString();
            IFloorsEchoGrain local = caller.GetGrain<IFloorsEchoGrain>(1);
            string localAt = await local.SiloAsync();
            string remoteAt = await second.Services.GetRequiredService<IGrainFactory>().GetGrain<IFloorsEchoGrain>(2).SiloAsync();
            IFloorsEchoGrain remote = caller.GetGrain<IFloorsEchoGrain>(2);
            if (localAt != firstSilo || remoteAt != secondSilo || await remote.SiloAsync() != secondSilo)
            {
                throw new InvalidOperationException($"Grain placement is not as intended: local grain on {localAt}, remote grain on {remoteAt}; silos {firstSilo} and {secondSilo}.");
            }

            progress.Step($"grain 1 on {localAt}, grain 2 on {remoteAt}; warming up");
            var payload = new byte[MessageSize];
            for (int i = 0; i < warmup; i++)
            {
                await local.EchoAsync(payload);
                await remote.EchoAsync(payload);
            }

            LongHistogram localHistogram = LatencySummary.NewHistogram();
            LongHistogram crossHistogram = LatencySummary.NewHistogram();
            long deadline = Stopwatch.GetTimestamp() + (long)(2 * maxSeconds * Stopwatch.Frequency);
            for (int i = 0; i < samples && Stopwatch.GetTimestamp() < deadline; i++)
            {
                // Alternate which goes first so that neither always follows the other.
                bool localFirst = (i & 1) == 0;
                await TimedCallAsync(localFirst ? local : remote, localFirst ? localHistogram : crossHistogram);
                await TimedCallAsync(localFirst ? remote : local, localFirst ? crossHistogram : localHistogram);
                progress.Report(i + 1);
            }

            var localSummary = LatencySummary.FromTicks(localHistogram);
            var crossSummary = LatencySummary.FromTicks(crossHistogram);
            progress.Step("stopping silos");
            doneText = $"local p50 {localSummary.P50Ms} ms, cross-silo p50 {crossSummary.P50Ms} ms";
            return (localSummary, crossSummary);

            async Task TimedCallAsync(IFloorsEchoGrain grain, LongHistogram histogram)
            {
                long start = Stopwatch.GetTimestamp();
                await grain.EchoAsync(payload);
                LatencySummary.RecordSince(histogram, start);
            }
        }
        finally
        {
            if (second is not null)
            {
                await StopAsync(second);
            }

            await StopAsync(first);
            progress.Done(doneText ?? "failed");
        }
    }

    private static async Task<IHost> StartSiloAsync(int siloPort, int gatewayPort, IPEndPoint? primary)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Error);
        builder.UseOrleans(silo => silo.UseLocalhostClustering(siloPort, gatewayPort, primary));
        IHost host = builder.Build();
        await host.StartAsync();
        return host;
    }

    private static async Task StopAsync(IHost host)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            await host.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }

        host.Dispose();
    }

    private static async Task WaitForActiveSilosAsync(IHost host, int count)
    {
        var membership = host.Services.GetRequiredService<IClusterMembershipService>();
        long deadline = Stopwatch.GetTimestamp() + 30 * Stopwatch.Frequency;
        while (membership.CurrentSnapshot.Members.Values.Count(m => m.Status == SiloStatus.Active) < count)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"The silos did not see {count} active members within 30 s.");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Ports the OS hands out for listeners bound to port 0 (held together so they differ, then released).</summary>
    private static int[] FreePorts(int count)
    {
        var listeners = new List<TcpListener>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                listeners.Add(listener);
            }

            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (TcpListener listener in listeners)
            {
                listener.Stop();
            }
        }
    }

    private static string FormatLoad(double[] load) =>
        load.Length == 0 || !double.IsFinite(load[0]) ? "?" : load[0].ToString("F2", CultureInfo.InvariantCulture);

    /// <summary>"ext4 on /dev/vda" for the longest mount point in /proc/mounts that contains <paramref name="path"/>.</summary>
    private static string FileSystemOf(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/mounts");
        }
        catch (IOException)
        {
            return "file system unknown";
        }

        string mountPoint = string.Empty;
        string description = "file system unknown";
        foreach (string line in lines)
        {
            string[] parts = line.Split(' ');
            bool contains = parts.Length >= 3
                && (path == parts[1] || path.StartsWith(parts[1].TrimEnd('/') + "/", StringComparison.Ordinal));
            if (contains && parts[1].Length >= mountPoint.Length)
            {
                mountPoint = parts[1];
                description = $"{parts[2]} on {parts[0]}";
            }
        }

        return description;
    }
}

/// <summary>The trivial grain the floors scenario calls: echoes its argument, and says which silo it lives in.</summary>
public interface IFloorsEchoGrain : IGrainWithIntegerKey
{
    /// <summary>Returns <paramref name="payload"/>.</summary>
    ValueTask<byte[]> EchoAsync(byte[] payload);

    /// <summary>The address of the silo hosting this activation.</summary>
    ValueTask<string> SiloAsync();
}

/// <summary>Activated in the silo that first calls it, so the scenario can put one in each silo.</summary>
[PreferLocalPlacement]
public sealed class FloorsEchoGrain(ILocalSiloDetails silo) : Grain, IFloorsEchoGrain
{
    public ValueTask<byte[]> EchoAsync(byte[] payload) => ValueTask.FromResult(payload);

    public ValueTask<string> SiloAsync() => ValueTask.FromResult(silo.SiloAddress.ToString());
}
