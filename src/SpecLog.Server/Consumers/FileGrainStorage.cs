using System.Buffers.Binary;
using System.Text;
using Orleans.Serialization;
using Orleans.Storage;
using SpecLog.Storage;

namespace SpecLog.Server.Consumers;

/// <summary>
/// Grain storage in files under one directory, each state replaced atomically and fsync'd before a write returns
/// (<see cref="DurableFile"/>). The embedded one-silo log keeps consumer checkpoints here; a cluster uses Azure Blob
/// storage instead, since a grain may activate on any silo. ETags are the state's version, so a stale activation's
/// write fails with <see cref="InconsistentStateException"/>.
/// </summary>
public sealed class FileGrainStorage(string directory, Serializer serializer) : IGrainStorage
{
    private static ReadOnlySpan<byte> Magic => "SLGS"u8;
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>The directory the states live in.</summary>
    public string Directory { get; } = directory;

    /// <inheritdoc />
    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await _lock.WaitAsync();
        try
        {
            var path = PathOf(stateName, grainId);
            if (!File.Exists(path))
            {
                grainState.RecordExists = false;
                grainState.ETag = null;
                return;
            }

            var bytes = await File.ReadAllBytesAsync(path);
            if (bytes.Length < 12 || !bytes.AsSpan(0, 4).SequenceEqual(Magic))
            {
                throw new InvalidDataException($"Grain state file {path} is not a SpecLog grain state.");
            }

            var version = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(4));
            grainState.State = serializer.Deserialize<T>(bytes.AsMemory(12));
            grainState.ETag = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await _lock.WaitAsync();
        try
        {
            var path = PathOf(stateName, grainId);
            var version = CheckETag(path, grainState.ETag);
            var payload = serializer.SerializeToArray(grainState.State);
            var bytes = new byte[12 + payload.Length];
            Magic.CopyTo(bytes);
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(4), version + 1);
            payload.CopyTo(bytes.AsSpan(12));
            System.IO.Directory.CreateDirectory(Directory);
            await Task.Run(() => DurableFile.Replace(path, bytes));
            grainState.ETag = (version + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await _lock.WaitAsync();
        try
        {
            var path = PathOf(stateName, grainId);
            CheckETag(path, grainState.ETag);
            File.Delete(path);
            grainState.ETag = null;
            grainState.RecordExists = false;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>The stored version, after checking that the writer read it (no ETag: nothing may be stored yet).</summary>
    private static long CheckETag(string path, string? etag)
    {
        long stored = 0;
        if (File.Exists(path))
        {
            Span<byte> head = stackalloc byte[12];
            using (var f = File.OpenRead(path))
            {
                f.ReadExactly(head);
            }

            stored = BinaryPrimitives.ReadInt64LittleEndian(head[4..]);
        }

        var expected = etag is null ? 0 : long.Parse(etag, System.Globalization.CultureInfo.InvariantCulture);
        if (expected != stored)
        {
            throw new InconsistentStateException($"Grain state {path} is at version {stored}; this writer read version {expected}.", stored.ToString(System.Globalization.CultureInfo.InvariantCulture), etag ?? "none");
        }

        return stored;
    }

    /// <summary>A file name per state and grain: readable where the id is plain, hex-escaped where it is not.</summary>
    private string PathOf(string stateName, GrainId grainId)
    {
        var name = new StringBuilder();
        foreach (var c in $"{stateName}.{grainId}")
        {
            if (char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_')
            {
                name.Append(c);
            }
            else
            {
                name.Append('%').Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return Path.Combine(Directory, name.Append(".state").ToString());
    }
}
