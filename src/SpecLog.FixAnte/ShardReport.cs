namespace SpecLog.FixAnte;

/// <summary>
/// A shard's progress report to the ordering layer: the command of the sequencer state machine.
/// Reports are cumulative, so a late or repeated report never moves anything backwards.
/// </summary>
/// <param name="Shard">The reporting shard's id.</param>
/// <param name="ReportSeq">Per-shard sequence number of the report, increasing; used to apply each report at most once.</param>
/// <param name="DurableSlots">How many slots the shard holds durably (records plus no-op slots).</param>
/// <param name="RealRecords">How many real (non no-op) records the shard holds durably; its rate sets the next quotas.</param>
/// <param name="TimestampMicros">The shard's own monotonic clock, in microseconds, when it sent the report.</param>
/// <param name="KnownWindows">How many windows the shard knows, so the sequencer can send the ones it lacks.</param>
/// <param name="FixedLag">True when this report answers a lag-fix signal.</param>
/// <param name="Waiting">True while the shard holds real records that are not committed yet: somebody waits for cuts.</param>
/// <param name="Control">
/// A change of the log's shard set instead of progress (<see cref="ShardControl"/>): sent by an administrator, not by
/// the shard, and ordered with the reports so every replica of the sequencer applies it at the same point. Its other
/// fields are 0 but <see cref="Shard"/> (the shard concerned) and <see cref="ReportSeq"/> (the request's id).
/// </param>
public readonly record struct ShardReport(
    int Shard,
    long ReportSeq,
    long DurableSlots,
    long RealRecords,
    long TimestampMicros,
    int KnownWindows,
    bool FixedLag,
    bool Waiting = false,
    ShardControl Control = ShardControl.None)
{
    /// <summary>
    /// A request to change the shard set: <paramref name="control"/> for <paramref name="shard"/>, with an argument
    /// carried in <see cref="RealRecords"/>. A <see cref="ShardControl.Fail"/> may carry the shard's last applied report
    /// sequence number the failure detector saw: if a report of the shard was applied since (the ordering layer itself
    /// had stalled, say), the request changes nothing; <see cref="long.MinValue"/>: unconditional. A
    /// <see cref="ShardControl.Join"/> of a failed shard that is back carries the slots its log holds: it continues
    /// after them (see <see cref="ShardVoid.IsRejoin"/>).
    /// </summary>
    public static ShardReport ForControl(ShardControl control, int shard, long requestId, long argument = long.MinValue) =>
        new(shard, requestId, 0, control is ShardControl.Fail or ShardControl.Join or ShardControl.Trim ? argument : 0, 0, 0, false, false, control);
}

/// <summary>Changes of the log's shard set, decided at window boundaries (elasticity).</summary>
public enum ShardControl
{
    /// <summary>An ordinary progress report.</summary>
    None = 0,

    /// <summary>
    /// Add shard <see cref="ShardReport.Shard"/>, which must be the next id (the shard count): it gets a quota from the
    /// next window the sequencer decides on. A request for an id that exists already changes nothing.
    /// </summary>
    Join = 1,

    /// <summary>
    /// Remove shard <see cref="ShardReport.Shard"/>: it keeps its slots in the windows decided already and has none from
    /// the next window on, for good. Its records stay readable. Refused for the last shard with slots.
    /// </summary>
    Leave = 2,

    /// <summary>
    /// Shard <see cref="ShardReport.Shard"/> failed: every replica is gone (or it did not answer a lag-fix in time). Its
    /// slots beyond the durable slots the sequencer heard of become no-ops in every decided window, and it leaves the
    /// log with a window decided at once (<see cref="ShardVoid"/>); records it delivered speculatively there are
    /// mis-speculated. Refused for the last shard with slots.
    /// </summary>
    Fail = 3,

    /// <summary>
    /// The log was trimmed below the GSN carried in <see cref="ShardReport.RealRecords"/> (<see cref="ShardReport.Shard"/>
    /// is unused): windows wholly below it are no longer needed by anyone and are dropped from the history
    /// (<see cref="WindowHistory.TruncateBelow"/>), so the ordering layer's state is bounded by the retained log. Only
    /// committed GSNs count; a lower point than an earlier trim changes nothing.
    /// </summary>
    Trim = 4,
}

/// <summary>What applying a report to the sequencer produced; the host sends it (after persisting new windows).</summary>
public sealed class SequencerOutput
{
    /// <summary>Windows decided by this step; they must be made durable before anyone is told about them.</summary>
    public List<WindowConfig> NewWindows { get; } = [];

    /// <summary>True when the committed cut advanced.</summary>
    public bool CommitAdvanced { get; set; }

    /// <summary>Lag-fix signals: (shard, cut the shard must fill up to with no-ops).</summary>
    public List<(int Shard, long TargetCut)> LagFixes { get; } = [];

    /// <summary>True when whether any shard waits for cuts changed: every shard must hear it.</summary>
    public bool WaitingChanged { get; set; }

    /// <summary>True if the report was a duplicate (or stale) and changed nothing.</summary>
    public bool Duplicate { get; set; }

    /// <summary>Why a shard-set change (<see cref="ShardReport.Control"/>) was refused; null if none was, or it was taken.</summary>
    public string? ControlRefused { get; set; }

    /// <summary>
    /// Departed shards that reported without knowing every window (a failed shard whose notices were lost, back): the
    /// host answers each with the windows it lacks, since a departed shard hears no broadcasts.
    /// </summary>
    public List<int> BehindShards { get; } = [];

    /// <summary>Resets the output for reuse.</summary>
    public void Clear()
    {
        NewWindows.Clear();
        LagFixes.Clear();
        CommitAdvanced = false;
        WaitingChanged = false;
        Duplicate = false;
        ControlRefused = null;
        BehindShards.Clear();
    }
}
