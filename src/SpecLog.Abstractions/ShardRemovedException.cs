namespace SpecLog;

/// <summary>
/// The shard has left the log (it was removed with <c>SpecLogClient.RemoveShardAsync</c>): it takes no more appends,
/// and the records of this call that it took after its last slot were not written to the log (they never get a
/// position; nobody reads them). Its records before that stay readable. <c>SpecLogClient</c> sends an append that did
/// not name a shard to another shard; one that named this shard fails with this exception.
/// </summary>
[GenerateSerializer, Alias("speclog.ShardRemovedException")]
public sealed class ShardRemovedException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public ShardRemovedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ShardRemovedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public ShardRemovedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for <paramref name="shard"/>, with the GSNs of the call's records (−1: not written).</summary>
    public ShardRemovedException(int shard, long[] gsns)
        : base($"Shard {shard} has left the log: it takes no more appends"
            + (gsns.Any(g => g >= 0) ? $" ({gsns.Count(g => g >= 0)} of the {gsns.Length} records of this call were written before it left; the others were not)." : "; the records of this call were not written."))
    {
        Shard = shard;
        Gsns = gsns;
    }

    /// <summary>The shard that left.</summary>
    [Id(0)]
    public int Shard { get; init; }

    /// <summary>
    /// Per record of the failed call, in order: its final GSN if the shard wrote it before it left (it is in the log
    /// and will be confirmed), −1 if not (it is not in the log). Empty when the call was refused before anything was taken.
    /// </summary>
    [Id(1)]
    public long[] Gsns { get; init; } = [];
}
