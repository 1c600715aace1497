using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace SpecLog.Bench.Reporting;

/// <summary>
/// The machine a report was measured on: cores, CPU model, memory (from /proc/meminfo), OS, kernel, .NET version and
/// the load average when the run started and when it ended. Linux files that are missing read as "?" / NaN.
/// </summary>
public sealed class MachineInfo
{
    private MachineInfo()
    {
    }

    /// <summary>Logical processors the process may use (<see cref="Environment.ProcessorCount"/>).</summary>
    public int Cores { get; private init; }

    /// <summary>"model name" of the first CPU in /proc/cpuinfo, or "?".</summary>
    public string CpuModel { get; private init; } = "?";

    /// <summary>MemTotal from /proc/meminfo in bytes (0 when unknown).</summary>
    public long MemoryBytes { get; private init; }

    /// <summary>PRETTY_NAME from /etc/os-release, else <see cref="RuntimeInformation.OSDescription"/>.</summary>
    public string Os { get; private init; } = "?";

    /// <summary>Kernel release (/proc/sys/kernel/osrelease), or "?".</summary>
    public string Kernel { get; private init; } = "?";

    /// <summary><see cref="RuntimeInformation.FrameworkDescription"/>, e.g. ".NET 10.0.0".</summary>
    public string DotNet { get; private init; } = RuntimeInformation.FrameworkDescription;

    /// <summary>1, 5 and 15 minute load averages when the run started.</summary>
    public double[] LoadAverageStart { get; private init; } = [];

    /// <summary>1, 5 and 15 minute load averages when the run ended (set by <see cref="MarkEnd"/>; empty before).</summary>
    public double[] LoadAverageEnd { get; private set; } = [];

    /// <summary>Reads the machine description now; the current load average becomes <see cref="LoadAverageStart"/>.</summary>
    public static MachineInfo Capture() => new()
    {
        Cores = Environment.ProcessorCount,
        CpuModel = CpuModelName(),
        MemoryBytes = MemTotalBytes(),
        Os = OsName(),
        Kernel = TryRead("/proc/sys/kernel/osrelease")?.Trim() ?? "?",
        LoadAverageStart = ReadLoadAverage(),
    };

    /// <summary>Records the current load average as <see cref="LoadAverageEnd"/> (again on every call).</summary>
    public void MarkEnd() => LoadAverageEnd = ReadLoadAverage();

    /// <summary>The current 1, 5 and 15 minute load averages from /proc/loadavg (NaN each when unavailable).</summary>
    public static double[] ReadLoadAverage()
    {
        string[] parts = (TryRead("/proc/loadavg") ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var result = new double[3];
        for (int i = 0; i < 3; i++)
        {
            result[i] = i < parts.Length && double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : double.NaN;
        }

        return result;
    }

    /// <summary>One line, e.g. "2 cores (AMD EPYC ...), 7.8 GiB RAM, Debian GNU/Linux 12, kernel 6.1.0, .NET 10.0.0; load 0.52 at start, 1.10 at end".</summary>
    public string Describe()
    {
        string load = $"load average {FormatLoad(LoadAverageStart)} at start";
        if (LoadAverageEnd.Length > 0)
        {
            load += $", {FormatLoad(LoadAverageEnd)} at end";
        }

        return string.Create(
            CultureInfo.InvariantCulture,
            $"{Cores} cores ({CpuModel}), {MemoryGiB:F1} GiB RAM, {Os}, kernel {Kernel}, {DotNet}; {load}");
    }

    /// <summary>MemTotal in GiB.</summary>
    public double MemoryGiB => MemoryBytes / (double)(1L << 30);

    /// <summary>The JSON object written under "machine".</summary>
    public JsonObject ToJson() => new()
    {
        ["cores"] = Cores,
        ["cpu_model"] = CpuModel,
        ["memory_bytes"] = MemoryBytes,
        ["memory_gib"] = Math.Round(MemoryGiB, 2),
        ["os"] = Os,
        ["kernel"] = Kernel,
        ["dotnet"] = DotNet,
        ["load_average_start"] = LoadArray(LoadAverageStart),
        ["load_average_end"] = LoadArray(LoadAverageEnd),
    };

    private static JsonArray LoadArray(double[] values)
    {
        var array = new JsonArray();
        foreach (double v in values)
        {
            array.Add(double.IsFinite(v) ? JsonValue.Create(v) : null);
        }

        return array;
    }

    private static string FormatLoad(double[] load) =>
        load.Length == 0 ? "?" : string.Join(" / ", load.Select(v => double.IsFinite(v) ? v.ToString("F2", CultureInfo.InvariantCulture) : "?"));

    private static string CpuModelName()
    {
        string? cpuinfo = TryRead("/proc/cpuinfo");
        string? line = cpuinfo?.Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        int colon = line?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        return line is not null && colon >= 0 ? line[(colon + 1)..].Trim() : RuntimeInformation.ProcessArchitecture.ToString();
    }

    private static long MemTotalBytes()
    {
        string? line = TryRead("/proc/meminfo")?.Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        string[] parts = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        return parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : 0;
    }

    private static string OsName()
    {
        string? line = TryRead("/etc/os-release")?.Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal));
        return line is not null ? line["PRETTY_NAME=".Length..].Trim().Trim('"') : RuntimeInformation.OSDescription;
    }

    /// <summary>The text of a small system file (/proc, /etc), or null when it cannot be read.</summary>
    internal static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
