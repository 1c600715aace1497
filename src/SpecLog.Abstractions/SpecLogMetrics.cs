using System.Diagnostics.Metrics;

namespace SpecLog;

/// <summary>
/// The log's own instruments (Meter <c>SpecLog</c>): the latency of every stage an append and a delivered record pass
/// through, and counters of the control traffic the log spends on them. Stage latencies come from timestamps taken
/// where each stage happens (UTC microseconds, comparable across the processes of one machine); a listener (the
/// benchmark's <c>anatomy</c> scenario, OpenTelemetry) reads them. Recording is skipped while nothing listens.
/// </summary>
public static class SpecLogMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "SpecLog";

    /// <summary>The stage-latency histogram's name; its <c>stage</c> tag names the stage (see <see cref="Stages"/>).</summary>
    public const string StageInstrument = "speclog.stage.duration";

    private static readonly Meter s_meter = new(MeterName, "1.0");

    /// <summary>The log's meter (its ordering instruments live in <see cref="OrderingMetrics"/>).</summary>
    internal static Meter Meter => s_meter;

    /// <summary>Latency of one stage, in milliseconds, tagged with <c>stage</c>.</summary>
    public static readonly Histogram<double> StageDuration = s_meter.CreateHistogram<double>(
        StageInstrument, "ms", "Time an append or a delivered record spends in one stage of the log (tag: stage).");

    /// <summary>Reports shards sent to the ordering layer (each one ordering-layer command).</summary>
    public static readonly Counter<long> Reports = s_meter.CreateCounter<long>("speclog.shard.reports", "{report}", "Reports shards sent to the ordering layer.");

    /// <summary>Commit notices shards received from the ordering layer.</summary>
    public static readonly Counter<long> Notices = s_meter.CreateCounter<long>("speclog.shard.notices", "{notice}", "Commit notices shards received.");

    /// <summary>Pushes shards sent to subscribers.</summary>
    public static readonly Counter<long> Pushes = s_meter.CreateCounter<long>("speclog.shard.pushes", "{push}", "Pushes shards sent to subscribers.");

    /// <summary>Deadline and cut-clock wake-ups of shards.</summary>
    public static readonly Counter<long> Wakeups = s_meter.CreateCounter<long>("speclog.shard.wakeups", "{wakeup}", "Cut-clock and deadline wake-ups of shards.");

    /// <summary>Records made durable by shards.</summary>
    public static readonly Counter<long> Records = s_meter.CreateCounter<long>("speclog.shard.records", "{record}", "Records shards made durable.");

    /// <summary>No-op slots shards filled.</summary>
    public static readonly Counter<long> NoOpSlots = s_meter.CreateCounter<long>("speclog.shard.noop_slots", "{slot}", "No-op slots shards filled.");

    /// <summary>Records one stage's latency given its start and end in UTC microseconds (ignored when negative or unmeasured).</summary>
    public static void RecordStage(string stage, long startMicros, long endMicros)
    {
        if (startMicros > 0 && endMicros >= startMicros && StageDuration.Enabled)
        {
            StageDuration.Record((endMicros - startMicros) / 1000.0, new KeyValuePair<string, object?>("stage", stage));
        }
    }

    /// <summary>The current time in UTC microseconds since the Unix epoch, the clock every stage timestamp uses.</summary>
    public static long NowMicros() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;

    /// <summary>The stages, in the order an append and a delivery pass through them.</summary>
    public static class Stages
    {
        /// <summary>Client: the append call until its batch leaves for the shard.</summary>
        public const string ClientQueue = "client.queue";

        /// <summary>Shard: the append arrived until its record is durable (fsync returned).</summary>
        public const string Durable = "shard.durable";

        /// <summary>Shard: durable until a report that includes it was sent.</summary>
        public const string ReportWait = "shard.report_wait";

        /// <summary>Ordering layer: a report sent by its shard until the ordering layer received it.</summary>
        public const string ReportTransit = "ordering.report_transit";

        /// <summary>Ordering layer: a report received until the sequencer state machine applied it (ordered; Copilot commit).</summary>
        public const string Ordering = "ordering.execute";

        /// <summary>Shard: the report including the append sent until its cut was committed (other shards, transit, ordering).</summary>
        public const string Commit = "shard.commit";

        /// <summary>Shard: the cut committed until the commit notice reached the shard.</summary>
        public const string NoticeTransit = "shard.notice_transit";

        /// <summary>Shard: the append arrived until the shard acknowledged it.</summary>
        public const string ShardAppend = "shard.append";

        /// <summary>Client: the append call until its acknowledgement with the final GSN.</summary>
        public const string ClientAppend = "client.append";

        /// <summary>Shard: a record durable until the shard pushed it to a subscriber.</summary>
        public const string DeliverWait = "shard.deliver_wait";

        /// <summary>Subscriber: a push sent until it arrived.</summary>
        public const string PushTransit = "subscriber.push_transit";

        /// <summary>Subscriber (GSN order): a record arrived until every lower position was known and it was released.</summary>
        public const string OrderWait = "subscriber.order_wait";

        /// <summary>Subscriber: a record released until a confirmation covering it was released.</summary>
        public const string ConfirmWait = "subscriber.confirm_wait";
    }
}
