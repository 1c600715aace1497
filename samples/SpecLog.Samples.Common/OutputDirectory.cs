using SpecLog.Consumer;

namespace SpecLog.Samples;

/// <summary>
/// Released outputs in one file per shard (<c>shard-{k}.out</c>, lines as <see cref="OutputFile{TOutput}"/> writes
/// them) in a directory the members of a consumer group share: whichever member holds a shard writes its file, and a
/// member that takes a shard over (from one that died, or in a rebalance) reads in the file what was released before
/// it, so every output lands exactly once whichever member released it.
/// </summary>
public sealed class OutputDirectory<TOutput> : IResumableOutputSink<TOutput>, IDisposable
{
    private readonly Dictionary<int, OutputFile<TOutput>> _open = [];

    /// <summary>Uses (and creates) <paramref name="path"/>.</summary>
    public OutputDirectory(string path)
    {
        Path = path;
        Directory.CreateDirectory(path);
    }

    /// <summary>The directory.</summary>
    public string Path { get; }

    /// <summary>The file of <paramref name="shard"/>'s outputs.</summary>
    public static string FileOf(string directory, int shard) => System.IO.Path.Combine(directory, $"shard-{shard}.out");

    /// <inheritdoc />
    public async ValueTask ReleaseAsync(IReadOnlyList<ReleasedOutput<TOutput>> outputs, CancellationToken cancellationToken)
    {
        foreach (var group in outputs.GroupBy(o => o.Shard))
        {
            if (!_open.TryGetValue(group.Key, out var file))
            {
                // Opened at the first release after the shard was taken: this member holds it now (its checkpoint is
                // fenced), so no one else appends to the file; a line torn by a member that died is cut off here.
                _open[group.Key] = file = new OutputFile<TOutput>(FileOf(Path, group.Key));
            }

            await file.ReleaseAsync([.. group], cancellationToken);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Asked whenever the consumer takes shards: the files are read again from disk (other members may have written
    /// them), and the files this member had open are closed, to be opened at their end when next written.
    /// </remarks>
    public ValueTask<IReadOnlyDictionary<int, OutputId>> GetLastReleasedAsync(CancellationToken cancellationToken)
    {
        CloseAll();
        var last = new Dictionary<int, OutputId>();
        foreach (var path in Directory.EnumerateFiles(Path, "shard-*.out"))
        {
            foreach (var (shard, id) in OutputFile<TOutput>.LastReleased(path))
            {
                last[shard] = id;
            }
        }

        return ValueTask.FromResult<IReadOnlyDictionary<int, OutputId>>(last);
    }

    /// <inheritdoc />
    public void Dispose() => CloseAll();

    private void CloseAll()
    {
        foreach (var file in _open.Values)
        {
            file.Dispose();
        }

        _open.Clear();
    }
}
