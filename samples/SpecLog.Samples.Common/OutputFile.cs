using System.Globalization;
using System.Text;
using SpecLog.Consumer;

namespace SpecLog.Samples;

/// <summary>
/// Released outputs appended to a text file, one line each (<c>gsn index shard text</c>), fsync'd per batch. It knows
/// the last output it holds from each shard, so a consumer restarted after a crash releases every output into it exactly
/// once.
/// </summary>
public sealed class OutputFile<TOutput> : IResumableOutputSink<TOutput>, IDisposable
{
    private readonly FileStream _file;
    private readonly Dictionary<int, OutputId> _last = [];

    /// <summary>Opens (or creates) <paramref name="path"/> and reads what it holds; a torn last line (a crash mid-write) is cut off.</summary>
    public OutputFile(string path)
    {
        Path = path;
        if (File.Exists(path))
        {
            var (last, whole, length) = Read(path);
            if (whole < length)
            {
                using var torn = new FileStream(path, FileMode.Open, FileAccess.Write);
                torn.SetLength(whole);
            }

            foreach (var (shard, id) in last)
            {
                _last[shard] = id;
            }
        }

        _file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    /// <summary>The last output of each shard that the whole lines of <paramref name="path"/> hold (none if it does not exist); changes nothing.</summary>
    public static Dictionary<int, OutputId> LastReleased(string path) => File.Exists(path) ? Read(path).Last : [];

    private static (Dictionary<int, OutputId> Last, int Whole, int Length) Read(string path)
    {
        // Only whole lines count: a crash may have torn the last one.
        byte[] bytes;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
        }

        var whole = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        var last = new Dictionary<int, OutputId>();
        foreach (var line in Encoding.UTF8.GetString(bytes, 0, whole).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 4);
            if (parts.Length == 4 && long.TryParse(parts[0], CultureInfo.InvariantCulture, out var gsn) && int.TryParse(parts[1], CultureInfo.InvariantCulture, out var index)
                && int.TryParse(parts[2], CultureInfo.InvariantCulture, out var shard))
            {
                var id = new OutputId(gsn, index);
                if (!last.TryGetValue(shard, out var known) || id.CompareTo(known) > 0)
                {
                    last[shard] = id;
                }
            }
        }

        return (last, whole, bytes.Length);
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public async ValueTask ReleaseAsync(IReadOnlyList<ReleasedOutput<TOutput>> outputs, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        foreach (var o in outputs)
        {
            text.Append(CultureInfo.InvariantCulture, $"{o.Gsn} {o.Index} {o.Shard} {o.Output}\n");
            _last[o.Shard] = new OutputId(o.Gsn, o.Index);
        }

        await _file.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), cancellationToken);
        _file.Flush(flushToDisk: true);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyDictionary<int, OutputId>> GetLastReleasedAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyDictionary<int, OutputId>>(new Dictionary<int, OutputId>(_last));

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();
}
