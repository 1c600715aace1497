using System.Buffers.Binary;
using System.Text;

namespace SpecLog.Storage;

/// <summary>
/// Recovery of a <see cref="CommitJournal"/> a crashed process left behind: reads its records in order (stopping at the
/// first one that is incomplete or fails its CRC, the torn tail of a write that was never acknowledged) and appends to
/// each log the journaled frames its own files lost.
/// </summary>
internal static class JournalReplay
{
    /// <summary>Replays every segment of the journal in <paramref name="directory"/> into the logs it names.</summary>
    public static void Run(string directory, string segmentExtension)
    {
        var frames = new Dictionary<string, List<byte[]>>(StringComparer.Ordinal);
        var order = new List<string>();
        string[] segments = Directory.GetFiles(directory, "*" + segmentExtension);
        Array.Sort(segments, StringComparer.Ordinal);
        foreach (string segment in segments)
        {
            byte[] data = File.ReadAllBytes(segment);
            int offset = 0;
            while (TryReadRecord(data, offset, out string? log, out int bodyStart, out int framesLength, out int next))
            {
                if (!frames.TryGetValue(log, out var list))
                {
                    frames[log] = list = [];
                    order.Add(log);
                }

                list.Add(data.AsSpan(bodyStart, framesLength).ToArray());
                offset = next;
            }
        }

        foreach (string log in order)
        {
            ApplyTo(log, frames[log], directory);
        }
    }

    private static bool TryReadRecord(byte[] data, int offset, out string log, out int framesStart, out int framesLength, out int next)
    {
        log = "";
        framesStart = framesLength = next = 0;
        if (data.Length - offset < CommitJournal.RecordHeaderSize || !CommitJournal.IsRecordStart(data.AsSpan(offset)))
        {
            return false;
        }

        ReadOnlySpan<byte> header = data.AsSpan(offset, CommitJournal.RecordHeaderSize);
        int pathBytes = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        framesLength = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (pathBytes <= 0 || framesLength < 0 || (framesLength & 7) != 0)
        {
            return false;
        }

        int padded = CommitJournal.PaddedPathLength(pathBytes);
        long end = (long)offset + CommitJournal.RecordHeaderSize + padded + framesLength;
        if (end > data.Length)
        {
            return false;
        }

        ReadOnlySpan<byte> body = data.AsSpan(offset + CommitJournal.RecordHeaderSize, padded + framesLength);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[12..]) != CommitJournal.RecordCrc(header, body))
        {
            return false;
        }

        log = Encoding.UTF8.GetString(body[..pathBytes]);
        framesStart = offset + CommitJournal.RecordHeaderSize + padded;
        next = (int)end;
        return true;
    }

    /// <summary>Appends to the log in <paramref name="logDirectory"/> every journaled entry at or past its own end.</summary>
    private static void ApplyTo(string logDirectory, List<byte[]> records, string journal)
    {
        if (!Directory.Exists(logDirectory))
        {
            return; // the log was deleted on purpose since; nothing to restore
        }

        int largest = DurableLogOptions.DEFAULT_MAX_ENTRY_SIZE;
        foreach (byte[] frames in records)
        {
            for (int at = 0; at < frames.Length;)
            {
                int payload = (int)Frame.PayloadLength(frames.AsSpan(at));
                largest = Math.Max(largest, payload);
                at += Frame.Length(payload);
            }
        }

        using DurableLog log = DurableLog.Open(new DurableLogOptions { Directory = logDirectory, MaxEntrySize = largest });
        foreach (byte[] frames in records)
        {
            for (int at = 0; at < frames.Length;)
            {
                ReadOnlySpan<byte> rest = frames.AsSpan(at);
                long length = Frame.CheckHeader(rest, rest.Length);
                if (length < 0 || !Frame.CrcMatches(rest[..(int)length]))
                {
                    throw new InvalidDataException($"Journal {journal} holds a damaged frame of log {logDirectory} behind a valid record checksum.");
                }

                long index = Frame.Index(rest);
                if (!Frame.IsSeal(rest) && index >= log.NextIndex)
                {
                    if (index > log.NextIndex)
                    {
                        throw new InvalidDataException(
                            $"Journal {journal} holds entry {index} of log {logDirectory}, whose own files end at entry {log.NextIndex}: the entries in between are lost.");
                    }

                    log.Append(Frame.Kind(rest), rest.Slice(Frame.HeaderSize, (int)Frame.PayloadLength(rest)));
                }

                at += (int)length;
            }
        }

        log.FlushAsync().AsTask().GetAwaiter().GetResult();
    }
}
