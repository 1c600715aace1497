namespace SpecLog.Client;

/// <summary>Settings of <see cref="SpecLogClient"/>.</summary>
public sealed class SpecLogClientOptions
{
    /// <summary>Default interval at which subscriptions re-register with shards (repairs subscriptions a shard dropped).</summary>
    public static readonly TimeSpan DEFAULT_SUBSCRIPTION_REFRESH = TimeSpan.FromSeconds(2);

    /// <summary>Default number of shard pushes a subscription buffers before it slows the shards down.</summary>
    public const int DEFAULT_SUBSCRIPTION_BUFFER = 64;

    /// <summary>Default longest wait for one append call's answer.</summary>
    public static readonly TimeSpan DEFAULT_APPEND_CALL_TIMEOUT = TimeSpan.FromSeconds(10);

    /// <summary>Default longest time an append is retried after failures with an unknown outcome.</summary>
    public static readonly TimeSpan DEFAULT_APPEND_RETRY_DEADLINE = TimeSpan.FromSeconds(30);

    /// <summary>Default number of append calls the client keeps outstanding per shard.</summary>
    public const int DEFAULT_MAX_APPENDS_IN_FLIGHT_PER_SHARD = 32;

    /// <summary>
    /// Append calls outstanding per shard. An append call lasts until its records are committed (a few ms), so this
    /// bounds how many commit cycles overlap: below the limit each append leaves at once; at the limit appends queue and
    /// the next call carries them all as one batch. Too low makes records wait at the client and reach the shard in
    /// bursts (which also costs no-op fillers); too high only costs more, smaller grain calls under heavy load.
    /// </summary>
    public int MaxAppendsInFlightPerShard { get; set; } = DEFAULT_MAX_APPENDS_IN_FLIGHT_PER_SHARD;

    /// <summary>
    /// Longest the client waits for the answer to one append call (a batch of records to one shard). Past it the call
    /// is cancelled and sent again (same append ids) until <see cref="AppendRetryDeadline"/>, so a silo that vanished
    /// mid-call holds the client's appends for at most this long instead of Orleans' response timeout. A committed
    /// append takes a few ms.
    /// </summary>
    public TimeSpan AppendCallTimeout { get; set; } = DEFAULT_APPEND_CALL_TIMEOUT;

    /// <summary>
    /// With replicated shards, the longest the client waits for a shard's leader to answer one append call before it
    /// tries the next replica (which leads by then or names the leader; the same append ids make the retry safe). Short,
    /// because a leader whose silo died never answers, and Orleans notices a dead silo only after its failure detection;
    /// a leader that is merely slow answers the retry with the original GSNs. Unreplicated logs use
    /// <see cref="AppendCallTimeout"/>.
    /// </summary>
    public TimeSpan ReplicatedAppendCallTimeout { get; set; } = DEFAULT_REPLICATED_APPEND_CALL_TIMEOUT;

    /// <summary>Default <see cref="ReplicatedAppendCallTimeout"/>.</summary>
    public static readonly TimeSpan DEFAULT_REPLICATED_APPEND_CALL_TIMEOUT = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// How long the client keeps sending an append again after failures that leave its outcome unknown (no answer in
    /// time, a silo lost mid-call, a shard that stopped or whose node is down), counted from the append call. Every
    /// append carries the client's id and a sequence number, and shards write each (id, number) once, so retries never
    /// write a record twice; past the deadline the append fails with a <see cref="TimeoutException"/>.
    /// </summary>
    public TimeSpan AppendRetryDeadline { get; set; } = DEFAULT_APPEND_RETRY_DEADLINE;

    /// <summary>Default <see cref="ConnectTimeout"/>.</summary>
    public static readonly TimeSpan DEFAULT_CONNECT_TIMEOUT = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long an Orleans client set up with <c>AddSpecLogClient</c> keeps trying to reach a gateway of the log when
    /// it starts; past it the start fails with a <see cref="SpecLogUnavailableException"/> that names the last error
    /// (Orleans' own default retries for about three minutes, silently). A retry filter the application registers
    /// itself (<c>UseConnectionRetryFilter</c>) takes precedence.
    /// </summary>
    public TimeSpan ConnectTimeout { get; set; } = DEFAULT_CONNECT_TIMEOUT;

    /// <summary>Default <see cref="ShardSetRefresh"/>.</summary>
    public static readonly TimeSpan DEFAULT_SHARD_SET_REFRESH = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How often the client asks the log which shards take appends (shards are added and removed while it serves).
    /// Appends that name no shard go round the shards the client knows; a removed shard is noticed at its first refusal
    /// and those appends go to another shard, and an added one gets its share within this interval.
    /// </summary>
    public TimeSpan ShardSetRefresh { get; set; } = DEFAULT_SHARD_SET_REFRESH;

    /// <summary>How often subscriptions re-register with their shards.</summary>
    public TimeSpan SubscriptionRefresh { get; set; } = DEFAULT_SUBSCRIPTION_REFRESH;

    /// <summary>Shard pushes buffered per subscription; a consumer slower than this applies back-pressure to the shards.</summary>
    public int SubscriptionBuffer { get; set; } = DEFAULT_SUBSCRIPTION_BUFFER;

    /// <summary>Default <see cref="SubscriptionBufferBytes"/>: 8 MB.</summary>
    public const long DEFAULT_SUBSCRIPTION_BUFFER_BYTES = 8L << 20;

    /// <summary>
    /// Record bytes buffered per subscription, whatever the number of pushes: a subscriber far behind gets pushes of up
    /// to a MB each (SpecLog:PushMaxBytes), so <see cref="SubscriptionBuffer"/> pushes alone could hold 64 MB for a
    /// consumer that stopped reading. One push is always taken into an empty buffer.
    /// </summary>
    public long SubscriptionBufferBytes { get; set; } = DEFAULT_SUBSCRIPTION_BUFFER_BYTES;
}
