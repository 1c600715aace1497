using Orleans.Concurrency;
using SpecLog.FixAnte;

namespace SpecLog;

/// <summary>
/// A shard of the log (grain key = shard id, 0 … ShardCount−1). It makes records durable, gives each the GSN it will
/// get, delivers it speculatively to subscribers at once, and acknowledges appends once their cut is committed. With R
/// replicas per shard each replica is a grain of its own (key <see cref="ShardKeys.Of"/>; replica 0's key is the shard
/// id): the one that leads serves these calls, the others refuse them with <see cref="ShardNotLeaderException"/>.
/// </summary>
public interface IShardGrain : IGrainWithIntegerKey
{
    /// <summary>Appends one record; completes with its final GSN once its cut is committed.</summary>
    /// <exception cref="ArgumentException">The record is empty or larger than the configured maximum.</exception>
    /// <exception cref="ArgumentOutOfRangeException">This shard id does not exist.</exception>
    Task<long> AppendAsync(byte[] payload, CancellationToken cancellationToken = default);

    /// <summary>
    /// Appends records in order (consecutive slots of this shard); completes with their final GSNs. Like
    /// <see cref="AppendAsync"/> it does not deduplicate: a retry writes the records again. <c>SpecLogClient</c> uses
    /// <see cref="AppendIdentifiedAsync"/>, which does.
    /// </summary>
    Task<long[]> AppendBatchAsync(byte[][] payloads, CancellationToken cancellationToken = default);

    /// <summary>
    /// Appends records identified by their client and per-client sequence numbers, exactly once: a record whose
    /// (<paramref name="client"/>, sequence number) this shard already holds is not written again, and its original
    /// GSN is returned (also after a restart of the shard). New records take consecutive slots in order.
    /// </summary>
    /// <exception cref="ArgumentException">A record is empty or too large, or the arrays differ in length.</exception>
    /// <exception cref="InvalidOperationException">A sequence number is older than the shard's deduplication window remembers.</exception>
    /// <exception cref="AppendOutcomeUnknownException">The shard stopped before the records were committed; retrying them is safe.</exception>
    Task<long[]> AppendIdentifiedAsync(Guid client, long[] sequenceNumbers, byte[][] payloads, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="AppendIdentifiedAsync"/> for records with tags (<see cref="RecordTags"/>; a null tag: none): each
    /// tag is stored with its record, delivered and read with it, and matched by filtered subscriptions.
    /// </summary>
    /// <exception cref="ArgumentException">A record is empty or too large, a tag is empty or too long, or the arrays differ in length.</exception>
    Task<long[]> AppendTaggedAsync(Guid client, long[] sequenceNumbers, byte[][] payloads, string?[] tags, CancellationToken cancellationToken = default);

    /// <summary>Reads durable entries starting at shard slot <paramref name="fromSlot"/> (at most <paramref name="maxEntries"/>).</summary>
    Task<ShardReadResult> ReadAsync(long fromSlot, int maxEntries);

    /// <summary>
    /// Subscribes <paramref name="observer"/> to this shard's entries from <paramref name="fromSlot"/> on. Idempotent
    /// for the same <paramref name="subscriptionId"/> (a repeated call only refreshes the registration). With a
    /// <paramref name="filter"/>, only matching records are sent; the other positions arrive as skipped slots (no-op runs).
    /// </summary>
    /// <exception cref="ArgumentException">The filter names no tag or an invalid one.</exception>
    Task SubscribeAsync(IShardObserver observer, Guid subscriptionId, long fromSlot, RecordFilter? filter = null);

    /// <summary>Ends a subscription.</summary>
    Task UnsubscribeAsync(Guid subscriptionId);

    /// <summary>
    /// Removes this shard's records below GSN <paramref name="gsn"/> (its slots below <paramref name="slot"/>, which must
    /// be committed): reads and subscriptions below it fail with <see cref="LogTrimmedException"/> from now on, and
    /// every replica deletes the whole log segments below it. Repeating it, or trimming below the trim point, changes
    /// nothing. Returns the trim point in force. <c>SpecLogClient.TrimAsync</c> trims every shard.
    /// </summary>
    Task<ShardTrim> TrimAsync(long gsn, long slot);

    /// <summary>Ordering layer → shard: committed cut, new windows, maybe a lag-fix signal.</summary>
    [OneWay]
    Task OnCommitted(CommitNotice notice);

    /// <summary>The shard's state (a replica that does not lead reports its role, epoch and log length only).</summary>
    Task<ShardStatus> GetStatusAsync();

    /// <summary>The same as <see cref="GetStatusAsync"/>: the Orleans dashboard's Grain Details panel shows what a grain's <c>GetState</c> returns.</summary>
    Task<ShardStatus> GetState();

    /// <summary>Shard replica → replica: the leader's entries or heartbeat.</summary>
    [OneWay]
    Task ReplicaAppend(ReplicaAppend message);

    /// <summary>Shard replica → replica: a follower's acknowledgement.</summary>
    [OneWay]
    Task ReplicaAcknowledge(ReplicaAck message);

    /// <summary>Shard replica → replica: a candidate's request for a vote.</summary>
    [OneWay]
    Task ReplicaRequestVote(ReplicaVoteRequest message);

    /// <summary>Shard replica → replica: a vote.</summary>
    [OneWay]
    Task ReplicaVote(ReplicaVote message);

    /// <summary>Shard leader → replica: record the shard's trim point and delete the whole segments below it; completes once it is durable here.</summary>
    Task ReplicaTrim(ShardTrim trim);

    /// <summary>Shard replica → replica: a replica with no state asks what the others hold.</summary>
    [OneWay]
    Task ReplicaProbe(ReplicaProbe message);

    /// <summary>Shard replica → replica: the answer to a <see cref="ReplicaProbe"/>.</summary>
    [OneWay]
    Task ReplicaProbeReply(ReplicaProbeReply message);
}

/// <summary>Receives a shard's pushes. Each push is acknowledged by completing the task; the next follows after it.</summary>
public interface IShardObserver : IGrainObserver
{
    /// <summary>The next batch of entries, windows and confirmations of one shard.</summary>
    Task OnShardEvents(ShardEventBatch batch);
}

/// <summary>
/// The (single-replica) sequencer of the ordering layer (grain key 0): applies shard reports to the Fix-Ante state
/// machine, persists new windows, and tells shards about committed cuts, windows and lag-fixes.
/// </summary>
public interface ISequencerGrain : IGrainWithIntegerKey
{
    /// <summary>Shard → ordering layer: a progress report.</summary>
    [OneWay]
    Task Report(ShardReport report);

    /// <summary>The decided windows numbered <paramref name="fromWindow"/> and above (from the base of the history, with it, when it was trimmed above that).</summary>
    Task<WindowSlice> GetWindowsAsync(long fromWindow);

    /// <summary>
    /// Administrator → ordering layer: the log was trimmed below <paramref name="gsn"/> (<c>SpecLogClient.TrimAsync</c>
    /// calls it after the shards): the windows wholly below it leave the ordering layer's history
    /// (<see cref="ShardControl.Trim"/>), ordered with the reports like any change. Idempotent.
    /// </summary>
    Task TrimHistoryAsync(long gsn);

    /// <summary>The sequencer's state.</summary>
    Task<SequencerStatus> GetStatusAsync();

    /// <summary>The same as <see cref="GetStatusAsync"/>: the Orleans dashboard's Grain Details panel shows what a grain's <c>GetState</c> returns.</summary>
    Task<SequencerStatus> GetState();

    /// <summary>
    /// Administrator → ordering layer: asks for a change of the shard set (<see cref="ShardControl.Join"/> of the next
    /// shard id, or <see cref="ShardControl.Leave"/> of a shard). It is ordered with the shards' reports and decided
    /// with the next window; this call returns once the request is on its way (with a single sequencer: applied), and
    /// <see cref="GetStatusAsync"/> shows when it is decided. Repeating a request changes nothing more.
    /// <c>SpecLogClient.AddShardAsync</c> and <c>RemoveShardAsync</c> wrap it.
    /// </summary>
    /// <exception cref="ArgumentException">The change is impossible now (not the next id, unknown shard, the last shard).</exception>
    Task RequestShardChangeAsync(ShardControl change, int shard);
}

/// <summary>
/// One replica of the replicated ordering layer (grain key = replica id, 0 … n−1), present when the sequencer is
/// replicated with Copilot or Multi-Paxos. Replicas talk to each other only through one-way calls; nothing awaits a
/// peer. Shards reach them through the silo's ordering layer, never directly.
/// </summary>
public interface ISequencerReplicaGrain : IGrainWithIntegerKey
{
    /// <summary>Replica → replica: a packet of protocol messages from replica <paramref name="from"/>'s incarnation <paramref name="epoch"/>.</summary>
    [OneWay]
    Task Deliver(int from, long epoch, byte[] packet);

    /// <summary>Ordering layer → replica: a shard report to order. A replica that pilots no log passes it to the pilots it believes in once.</summary>
    [OneWay]
    Task Submit(ShardReport report, bool forwarded);

    /// <summary>The decided windows numbered <paramref name="fromWindow"/> and above, as far as this replica has executed.</summary>
    Task<WindowSlice> GetWindowsAsync(long fromWindow);

    /// <summary>The state of the replicated sequencer as this replica has executed it.</summary>
    Task<SequencerStatus> GetSequencerStatusAsync();

    /// <summary>The replica's protocol state.</summary>
    Task<ReplicaStatus> GetStatusAsync();

    /// <summary>The same as <see cref="GetStatusAsync"/>: the Orleans dashboard's Grain Details panel shows what a grain's <c>GetState</c> returns.</summary>
    Task<ReplicaStatus> GetState();

    /// <summary>
    /// Replica → replica: replica <paramref name="from"/> started with no state at all (a new cluster, or a lost disk)
    /// and asks what this one holds; answered with <see cref="OrderingProbeReply"/>. One-way both ways, so replicas
    /// that all start blank answer each other while they wait. <paramref name="probe"/> names the asking activation:
    /// repeats of its probe are answered alike (the lost incarnation is fenced once).
    /// </summary>
    [OneWay]
    Task OrderingProbe(int from, Guid probe);

    /// <summary>Replica → replica: the answer to <see cref="OrderingProbe"/>.</summary>
    [OneWay]
    Task OrderingProbeReply(OrderingProbeAnswer answer);

    /// <summary>
    /// Replica → donor: one chunk of what a replica that lost its state rebuilds from — the donor's committed entries
    /// (never its votes) and its sequencer state at the same point, encoded as an ordering checkpoint. Chunk 0 of a new
    /// <paramref name="transfer"/> takes the checkpoint; later chunks are cut from the same bytes, so a large state
    /// never travels as one message.
    /// </summary>
    /// <exception cref="InvalidOperationException">This replica is itself rebuilding, or no longer holds <paramref name="transfer"/> (it restarted, or the transfer went idle): start again.</exception>
    Task<TransferChunk> GetTransferChunkAsync(Guid transfer, int chunk);
}
