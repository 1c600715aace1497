using System.Diagnostics;
using System.Globalization;
using FASTER.core;
using HdrHistogram;
using Microsoft.Win32.SafeHandles;
using SpecLog.Storage;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Measures single-record commit latency of raw file strategies, FasterLog and <see cref="DurableLog"/> side by side,
/// then the group-commit throughput of <see cref="DurableLog"/>. Prints Markdown tables.
/// Options: --seconds N (per measurement, default 5), --runs N (default 1; medians are printed when N &gt; 1),
/// --group-delay-us N (DurableLogOptions.MaxGroupCommitDelay), --writer-spin-us N (DurableLogOptions.WriterSpin), --dir PATH (scratch directory, default under the temp folder), --no-faster, --only KEY[,KEY...] (run only measurements whose
/// key contains one of the KEYs: raw-filestream, raw-growing, raw-fallocate, raw-zeroed, faster, log-zerofill, log-fallocate, log-none,
/// log-nofsync, group-1, group-2, group-8, group-64, group-batch100, group-fallocate-64, group-none-64, group-nofsync-64, group-faster-64).
/// </summary>
public sealed class StorageScenario : IScenario
{
    /// <summary>Measures the machine (or the storage alone), not the log: no JIT warm-up of the log first.</summary>
    public bool UsesLog => false;

    private const int PayloadSize = 100;
    private const int RawRecordSize = 128; // what a 100-byte payload occupies in a DurableLog frame
    private const long RawFileSize = 64L << 20;
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    private static TimeSpan? s_groupDelay;
    private static TimeSpan? s_writerSpin;

    public string Name => "storage";

    public string Description => "commit latency and group-commit throughput of the durable log vs. raw files and FasterLog";

    public async Task<int> RunAsync(BenchArgs args)
    {
        double seconds = args.GetDouble("seconds", 5);
        if (args.Get("group-delay-us") is { } delay)
        {
            s_groupDelay = TimeSpan.FromMicroseconds(double.Parse(delay, s_inv));
        }

        if (args.Get("writer-spin-us") is { } spin)
        {
            s_writerSpin = TimeSpan.FromMicroseconds(double.Parse(spin, s_inv));
        }

        int runs = args.GetInt("runs", 1);
        bool faster = args.Get("no-faster") is null;
        string only = args.Get("only") ?? string.Empty;
        string[] onlyKeys = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        bool Want(string name) => onlyKeys.Length == 0 || onlyKeys.Any(k => name.Contains(k, StringComparison.OrdinalIgnoreCase));
        string root = Path.GetFullPath(args.Get("dir") ?? Path.Combine(Path.GetTempPath(), $"speclog-bench-{Environment.ProcessId}"));
        Directory.CreateDirectory(root);
        Console.WriteLine($"# storage scenario, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine();
        Console.WriteLine(MachineInfo(root));
        Console.WriteLine($"{seconds.ToString(s_inv)} s per measurement, {runs} run(s), payload {PayloadSize} B");
        Console.WriteLine();

        var latencyRuns = new List<List<LatencyRow>>();
        var throughputRuns = new List<List<ThroughputRow>>();
        try
        {
            for (int run = 1; run <= runs; run++)
            {
                var latency = new List<LatencyRow>();
                var throughput = new List<ThroughputRow>();
                var latencyJobs = new List<(string Key, Func<string, Task<LatencyRow>> Measure)>
                {
                    ("raw-filestream", d => FileStreamFlush(d, seconds)),
                    ("raw-growing", d => RawFdatasync(d, "growing file + fdatasync", seconds, prepare: null)),
                    ("raw-fallocate", d => RawFdatasync(d, "fallocate-only file + fdatasync", seconds, Native.Fallocate)),
                    ("raw-zeroed", d => RawFdatasync(d, "pre-zeroed file + fdatasync", seconds, ZeroFill)),
                };
                if (faster)
                {
                    latencyJobs.Add(("faster", d => FasterLogLatency(d, seconds)));
                }

                latencyJobs.Add(("log-zerofill", d => DurableLogLatency(d, SegmentPreallocation.ZeroFill, seconds, fsync: true)));
                latencyJobs.Add(("log-fallocate", d => DurableLogLatency(d, SegmentPreallocation.Fallocate, seconds, fsync: true)));
                latencyJobs.Add(("log-none", d => DurableLogLatency(d, SegmentPreallocation.None, seconds, fsync: true)));
                latencyJobs.Add(("log-nofsync", d => DurableLogLatency(d, SegmentPreallocation.ZeroFill, seconds, fsync: false)));

                var throughputJobs = new List<(string Key, Func<string, Task<ThroughputRow>> Measure)>
                {
                    ("group-1", d => DurableLogThroughput(d, SegmentPreallocation.ZeroFill, 1, 1, seconds)),
                    ("group-2", d => DurableLogThroughput(d, SegmentPreallocation.ZeroFill, 2, 1, seconds)),
                    ("group-8", d => DurableLogThroughput(d, SegmentPreallocation.ZeroFill, 8, 1, seconds)),
                    ("group-64", d => DurableLogThroughput(d, SegmentPreallocation.ZeroFill, 64, 1, seconds)),
                    ("group-batch100", d => DurableLogThroughput(d, SegmentPreallocation.ZeroFill, 1, 100, seconds)),
                    ("group-fallocate-64", d => DurableLogThroughput(d, SegmentPreallocation.Fallocate, 64, 1, seconds)),
                    ("group-none-64", d => DurableLogThroughput(d, SegmentPreallocation.None, 64, 1, seconds)),
                    ("group-nofsync-64", d => DurableLogThroughput(d, SegmentPreallocation.ZeroFill, 64, 1, seconds, fsync: false)),
                    ("logs4-own", d => MultiLogThroughput(d, 4, journal: false, seconds)),
                    ("logs4-journal", d => MultiLogThroughput(d, 4, journal: true, seconds)),
                    ("logs7-own", d => MultiLogThroughput(d, 7, journal: false, seconds)),
                    ("logs7-journal", d => MultiLogThroughput(d, 7, journal: true, seconds)),
                };
                if (faster)
                {
                    throughputJobs.Add(("group-faster-64", d => FasterLogThroughput(d, 64, seconds)));
                }

                foreach ((string key, Func<string, Task<LatencyRow>> measure) in latencyJobs.Where(j => Want(j.Key)))
                {
                    latency.Add(await Fresh(root, measure));
                }

                foreach ((string key, Func<string, Task<ThroughputRow>> measure) in throughputJobs.Where(j => Want(j.Key)))
                {
                    throughput.Add(await Fresh(root, measure));
                }

                Console.WriteLine($"## run {run}");
                Console.WriteLine();
                if (Want("open"))
                {
                    await Fresh(root, OpenTimes);
                }

                PrintLatency(latency);
                PrintThroughput(throughput);
                latencyRuns.Add(latency);
                throughputRuns.Add(throughput);
            }

            if (runs > 1)
            {
                Console.WriteLine($"## median of {runs} runs");
                Console.WriteLine();
                PrintLatency(Median(latencyRuns, rows => new LatencyRow(
                    rows[0].Name,
                    MedianOf(rows, r => r.Count),
                    MedianOf(rows, r => r.P50),
                    MedianOf(rows, r => r.P90),
                    MedianOf(rows, r => r.P99),
                    MedianOf(rows, r => r.P999),
                    MedianOf(rows, r => r.Max))));
                PrintThroughput(Median(throughputRuns, rows => new ThroughputRow(
                    rows[0].Name,
                    MedianOf(rows, r => r.RecordsPerSecond),
                    MedianOf(rows, r => r.CommitsPerSecond),
                    MedianOf(rows, r => r.P50),
                    MedianOf(rows, r => r.P99))));
            }
        }
        finally
        {
            if (args.Get("dir") is null)
            {
                Directory.Delete(root, recursive: true);
            }
        }

        return 0;
    }

    private sealed record LatencyRow(string Name, double Count, double P50, double P90, double P99, double P999, double Max);

    private sealed record ThroughputRow(string Name, double RecordsPerSecond, double CommitsPerSecond, double P50, double P99);

    private static async Task<T> Fresh<T>(string root, Func<string, Task<T>> measure)
    {
        string dir = Path.Combine(root, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            return await measure(dir);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);

            // Let the deletion's journal commit and discard finish before the next measurement starts.
            Native.SyncAll();
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
    }

    private static byte[] Record(int size)
    {
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        return bytes;
    }

    private static LongHistogram NewHistogram() => new(60L * 1_000_000_000, 3);

    private static long NanosSince(long start) =>
        (long)((Stopwatch.GetTimestamp() - start) * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary>Runs <paramref name="op"/> back to back: 0.5 s of warm-up, then <paramref name="seconds"/> recorded.</summary>
    private static async Task<LatencyRow> Measure(string name, double seconds, Func<ValueTask> op)
    {
        long warmEnd = Stopwatch.GetTimestamp() + (long)(0.5 * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < warmEnd)
        {
            await op();
        }

        LongHistogram histogram = NewHistogram();
        long end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            long start = Stopwatch.GetTimestamp();
            await op();
            histogram.RecordValue(NanosSince(start));
        }

        return ToRow(name, histogram);
    }

    private static LatencyRow ToRow(string name, HistogramBase h) => new(
        name,
        h.TotalCount,
        h.GetValueAtPercentile(50) / 1e6,
        h.GetValueAtPercentile(90) / 1e6,
        h.GetValueAtPercentile(99) / 1e6,
        h.GetValueAtPercentile(99.9) / 1e6,
        h.GetValueAtPercentile(100) / 1e6);

    private static async Task<LatencyRow> FileStreamFlush(string dir, double seconds)
    {
        byte[] record = Record(RawRecordSize);
        await using var stream = new FileStream(Path.Combine(dir, "filestream.dat"), FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1);
        return await Measure("FileStream.Write + Flush(true) (fsync, growing file)", seconds, () =>
        {
            stream.Write(record);
            stream.Flush(flushToDisk: true);
            return ValueTask.CompletedTask;
        });
    }

    private static void ZeroFill(SafeFileHandle handle, long size)
    {
        var zeros = new byte[1 << 20];
        for (long offset = 0; offset < size; offset += zeros.Length)
        {
            RandomAccess.Write(handle, zeros, offset);
        }

        RandomAccess.FlushToDisk(handle);
    }

    private static async Task<LatencyRow> RawFdatasync(string dir, string name, double seconds, Action<SafeFileHandle, long>? prepare)
    {
        byte[] record = Record(RawRecordSize);
        using SafeFileHandle handle = File.OpenHandle(Path.Combine(dir, "raw.dat"), FileMode.CreateNew, FileAccess.ReadWrite);
        if (prepare is not null)
        {
            prepare(handle, RawFileSize);
            RandomAccess.FlushToDisk(handle);
        }

        long offset = 0;
        return await Measure(name, seconds, () =>
        {
            if (prepare is not null && offset + RawRecordSize > RawFileSize)
            {
                offset = 0;
            }

            RandomAccess.Write(handle, record, offset);
            Native.Fdatasync(handle);
            offset += RawRecordSize;
            return ValueTask.CompletedTask;
        });
    }

    private static async Task<LatencyRow> FasterLogLatency(string dir, double seconds)
    {
        byte[] record = Record(PayloadSize);
        using var settings = new FasterLogSettings(dir);
        using var log = new FasterLog(settings);
        return await Measure("FasterLog 2.6.5 Enqueue + CommitAsync", seconds, async () =>
        {
            log.Enqueue(record);
            await log.CommitAsync();
        });
    }

    private static DurableLogOptions Options(string dir, SegmentPreallocation mode, bool fsync)
    {
        var options = new DurableLogOptions { Directory = dir, Preallocation = mode, Fsync = fsync };
        if (s_groupDelay is { } delay)
        {
            options.MaxGroupCommitDelay = delay;
        }

        if (s_writerSpin is { } spin)
        {
            options.WriterSpin = spin;
        }

        return options;
    }

    private static string Label(SegmentPreallocation mode, bool fsync) => fsync ? mode.ToString() : $"{mode}, Fsync off: thread hand-offs only";

    private static async Task<LatencyRow> DurableLogLatency(string dir, SegmentPreallocation mode, double seconds, bool fsync)
    {
        byte[] record = Record(PayloadSize);
        await using var log = DurableLog.Open(Options(dir, mode, fsync));
        return await Measure($"DurableLog Append + FlushAsync ({Label(mode, fsync)})", seconds, async () =>
        {
            log.Append(1, record);
            await log.FlushAsync();
        });
    }

    private static async Task<ThroughputRow> DurableLogThroughput(string dir, SegmentPreallocation mode, int producers, int batch, double seconds, bool fsync = true)
    {
        byte[] record = Record(PayloadSize);
        await using var log = DurableLog.Open(Options(dir, mode, fsync));
        string name = batch == 1
            ? $"DurableLog ({Label(mode, fsync)}), {producers} producer(s), Append + FlushAsync each"
            : $"DurableLog ({Label(mode, fsync)}), {producers} producer(s), batches of {batch} then FlushAsync";
        return await RunProducers(name, producers, batch, seconds, () => log.FlushCount, async () =>
        {
            for (int i = 0; i < batch; i++)
            {
                log.Append(1, record);
            }

            await log.FlushAsync();
        });
    }

    /// <summary>
    /// <paramref name="logs"/> logs on one disk (a silo's shards and ordering replicas), one producer each doing
    /// Append + FlushAsync: each log fdatasyncing its own files, or all of them sharing one <see cref="CommitJournal"/>.
    /// </summary>
    private static async Task<ThroughputRow> MultiLogThroughput(string dir, int logs, bool journal, double seconds)
    {
        byte[] record = Record(PayloadSize);
        using CommitJournal? shared = journal ? CommitJournal.Open(Path.Combine(dir, "journal")) : null;
        var opened = new DurableLog[logs];
        for (int i = 0; i < logs; i++)
        {
            var options = Options(Path.Combine(dir, $"log-{i}"), SegmentPreallocation.ZeroFill, fsync: true);
            options.Journal = shared;
            opened[i] = DurableLog.Open(options);
        }

        try
        {
            string name = $"{logs} DurableLogs, 1 producer each, Append + FlushAsync: {(journal ? "one shared CommitJournal" : "each fdatasyncs its own files")}";
            return await RunProducers(name, logs, 1, seconds, () => journal ? shared!.SyncCount : opened.Sum(l => l.FlushCount), async me =>
            {
                opened[me].Append(1, record);
                await opened[me].FlushAsync();
            });
        }
        finally
        {
            foreach (DurableLog log in opened)
            {
                await log.DisposeAsync();
            }
        }
    }

    /// <summary>Prints how long creating a log, reopening it cleanly and reopening a full 64 MiB segment take.</summary>
    private static async Task<bool> OpenTimes(string dir)
    {
        byte[] record = Record(PayloadSize);
        var options = Options(dir, SegmentPreallocation.ZeroFill, fsync: true);
        var stopwatch = Stopwatch.StartNew();
        var log = DurableLog.Open(options);
        double create = stopwatch.Elapsed.TotalMilliseconds;
        for (int i = 0; i < 400_000; i++)
        {
            log.Append(1, record);
        }

        await log.FlushAsync();
        await log.DisposeAsync();
        Native.SyncAll();
        stopwatch.Restart();
        log = DurableLog.Open(options);
        double reopen = stopwatch.Elapsed.TotalMilliseconds;
        long entries = log.NextIndex;
        await log.DisposeAsync();
        Console.WriteLine(string.Create(
            s_inv,
            $"Open: new log (zero-fills a 4 MiB first segment) {create:F0} ms; reopen with {entries} entries ({entries * 128 / (1 << 20)} MiB, scanned and CRC-checked) {reopen:F0} ms."));
        Console.WriteLine();
        return true;
    }

    private static async Task<ThroughputRow> FasterLogThroughput(string dir, int producers, double seconds)
    {
        byte[] record = Record(PayloadSize);
        using var settings = new FasterLogSettings(dir);
        using var log = new FasterLog(settings);
        return await RunProducers($"FasterLog 2.6.5, {producers} producer(s), Enqueue + CommitAsync each", producers, 1, seconds, () => 0, async () =>
        {
            log.Enqueue(record);
            await log.CommitAsync();
        });
    }

    /// <summary>Runs concurrent async producers for 0.5 s of warm-up and then <paramref name="seconds"/>; reports records/s and per-commit latency.</summary>
    private static Task<ThroughputRow> RunProducers(string name, int producers, int batch, double seconds, Func<long> commits, Func<ValueTask> commit) =>
        RunProducers(name, producers, batch, seconds, commits, _ => commit());

    /// <summary>As above; <paramref name="commit"/> is given the producer's number.</summary>
    private static async Task<ThroughputRow> RunProducers(string name, int producers, int batch, double seconds, Func<long> commits, Func<int, ValueTask> commit)
    {
        int phase = 0; // 0 warm-up, 1 measuring, 2 stop
        var histograms = new LongHistogram[producers];
        var counts = new long[producers];
        var tasks = new Task[producers];
        for (int p = 0; p < producers; p++)
        {
            int me = p;
            histograms[p] = NewHistogram();
            tasks[p] = Task.Run(async () =>
            {
                while (true)
                {
                    int now = Volatile.Read(ref phase);
                    if (now == 2)
                    {
                        return;
                    }

                    long start = Stopwatch.GetTimestamp();
                    await commit(me);
                    if (now == 1 && Volatile.Read(ref phase) == 1)
                    {
                        histograms[me].RecordValue(NanosSince(start));
                        counts[me] += batch;
                    }
                }
            });
        }

        await Task.Delay(TimeSpan.FromSeconds(0.5));
        long commitsBefore = commits();
        var stopwatch = Stopwatch.StartNew();
        Volatile.Write(ref phase, 1);
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        Volatile.Write(ref phase, 2);
        double elapsed = stopwatch.Elapsed.TotalSeconds;
        long commitsDuring = commits() - commitsBefore;
        await Task.WhenAll(tasks);

        LongHistogram all = NewHistogram();
        foreach (LongHistogram h in histograms)
        {
            all.Add(h);
        }

        return new ThroughputRow(
            name,
            counts.Sum() / elapsed,
            commitsDuring / elapsed,
            all.GetValueAtPercentile(50) / 1e6,
            all.GetValueAtPercentile(99) / 1e6);
    }

    private static void PrintLatency(IEnumerable<LatencyRow> rows)
    {
        Console.WriteLine("Single 100-byte record commit latency (ms):");
        Console.WriteLine();
        Console.WriteLine("| variant | commits | p50 | p90 | p99 | p99.9 | max |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (LatencyRow r in rows)
        {
            Console.WriteLine(string.Create(s_inv, $"| {r.Name} | {r.Count:F0} | {r.P50:F3} | {r.P90:F3} | {r.P99:F3} | {r.P999:F3} | {r.Max:F3} |"));
        }

        Console.WriteLine();
    }

    private static void PrintThroughput(IEnumerable<ThroughputRow> rows)
    {
        Console.WriteLine("Group commit throughput (100-byte records; latency is per Append..FlushAsync round, ms):");
        Console.WriteLine();
        Console.WriteLine("| mode | records/s | fdatasyncs/s | p50 | p99 |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (ThroughputRow r in rows)
        {
            string syncs = r.CommitsPerSecond > 0 ? r.CommitsPerSecond.ToString("F0", s_inv) : "n/a";
            Console.WriteLine(string.Create(s_inv, $"| {r.Name} | {r.RecordsPerSecond:F0} | {syncs} | {r.P50:F3} | {r.P99:F3} |"));
        }

        Console.WriteLine();
    }

    private static List<T> Median<T>(List<List<T>> runs, Func<List<T>, T> combine)
    {
        var result = new List<T>();
        for (int i = 0; i < runs[0].Count; i++)
        {
            result.Add(combine(runs.Select(run => run[i]).ToList()));
        }

        return result;
    }

    private static double MedianOf<T>(List<T> rows, Func<T, double> value)
    {
        double[] values = rows.Select(value).OrderBy(v => v).ToArray();
        int mid = values.Length / 2;
        return values.Length % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }

    private static string MachineInfo(string dir)
    {
        string kernel = Reporting.MachineInfo.TryRead("/proc/sys/kernel/osrelease")?.Trim() ?? Environment.OSVersion.VersionString;
        string memory = "?";
        string? meminfo = Reporting.MachineInfo.TryRead("/proc/meminfo");
        if (meminfo is not null)
        {
            string? line = meminfo.Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            if (line is not null && long.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], out long kb))
            {
                memory = $"{kb / 1024.0 / 1024.0:F1} GiB";
            }
        }

        string fs = "?";
        string? mounts = Reporting.MachineInfo.TryRead("/proc/mounts");
        if (mounts is not null)
        {
            string best = string.Empty;
            foreach (string line in mounts.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] parts = line.Split(' ');
                if (parts.Length >= 3 && dir.StartsWith(parts[1], StringComparison.Ordinal) && parts[1].Length >= best.Length)
                {
                    best = parts[1];
                    fs = $"{parts[2]} on {parts[0]} (mounted at {parts[1]})";
                }
            }
        }

        return $"machine: {Environment.ProcessorCount} CPUs, {memory} RAM, kernel {kernel}, .NET {Environment.Version}; data dir {dir}: {fs}";
    }
}
