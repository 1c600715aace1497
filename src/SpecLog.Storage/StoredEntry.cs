namespace SpecLog.Storage;

/// <summary>One entry read back from a <see cref="DurableLog"/>: its index, its kind byte and a private copy of its payload.</summary>
/// <param name="Index">Position of the entry in the log, starting at 0.</param>
/// <param name="Kind">Application-defined kind byte given to <see cref="DurableLog.Append"/>.</param>
/// <param name="Payload">Copy of the payload bytes; the caller owns it.</param>
public readonly record struct StoredEntry(long Index, byte Kind, ReadOnlyMemory<byte> Payload);
