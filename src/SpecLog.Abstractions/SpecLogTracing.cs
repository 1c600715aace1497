using System.Diagnostics;

namespace SpecLog;

/// <summary>
/// The log's traces (ActivitySource <c>SpecLog</c>): one append from the client's call through the shard and the ordering
/// layer to its acknowledgement. Nothing is created, tagged or allocated while nothing listens to the source
/// (<see cref="ActivitySource.StartActivity(string, ActivityKind)"/> returns null, and every tag, event and link is
/// added behind a null check).
/// </summary>
/// <remarks>
/// <para>The spans of one append, parent first (names in <see cref="Spans"/>):</para>
/// <code>
/// speclog.append                (client; the call until its acknowledgement: shard, GSN, retries as events)
///   speclog.append.send         (client; one per grain call carrying appends: the first append's child, linked to the others)
///     speclog.shard.append      (shard; the grain call: events durable, speculative, reported, committed; GSNs)
///       speclog.shard.order     (shard; this call's records from the report completing their cut to that cut's commit;
///                                linked to the report span)
///       speclog.shard.report    (shard; only under the first call a report covers: the report sent until its cut was
///                                committed, linked to every covered call's shard span)
///         speclog.ordering.order (sequencer, or each Copilot pilot: the report received until ordered and executed)
/// </code>
/// <para>
/// Batching is shown with links, not copied spans: the client sends concurrent appends of one shard in one grain call,
/// so the send span is a child of its first append and links to the others; a report covers the records of many calls,
/// so its span is a child of the first call it covers and links to all of them, and every covered call's
/// <see cref="Spans.ShardOrder"/> span links back to it. Contexts cross grain calls in the request context under
/// <see cref="ContextKey"/> (only while a span exists), so the spans join up without Orleans' activity propagation; with
/// it (and Orleans' sources listened to) Orleans' own RPC spans appear in between.
/// </para>
/// </remarks>
public static class SpecLogTracing
{
    /// <summary>The ActivitySource's name (add it to a tracer: <c>tracing.AddSource(SpecLogTracing.SourceName)</c>).</summary>
    public const string SourceName = "SpecLog";

    /// <summary>The request-context key carrying the W3C <c>traceparent</c> of a span to the grain it calls.</summary>
    public const string ContextKey = "speclog.traceparent";

    /// <summary>The log's activity source.</summary>
    public static readonly ActivitySource Source = new(SourceName, "1.0");

    /// <summary>The span names (stable).</summary>
    public static class Spans
    {
        /// <summary>Client: one <c>AppendAsync</c> or <c>AppendBatchAsync</c> call, from the call to its acknowledgement (or failure).</summary>
        public const string Append = "speclog.append";

        /// <summary>Client: one grain call carrying appends to a shard (each retry is a new one).</summary>
        public const string Send = "speclog.append.send";

        /// <summary>Shard: its handling of one append grain call, until it answers with the GSNs.</summary>
        public const string ShardAppend = "speclog.shard.append";

        /// <summary>Shard: one append call's wait for ordering, from the report that completes its records' cut to that cut's commit.</summary>
        public const string ShardOrder = "speclog.shard.order";

        /// <summary>Shard: one report to the ordering layer that completed a traced append's cut, until that cut was committed.</summary>
        public const string ShardReport = "speclog.shard.report";

        /// <summary>Ordering layer: one traced report, from its arrival until the sequencer state machine executed it (ordered; a Copilot commit).</summary>
        public const string Ordering = "speclog.ordering.order";
    }

    /// <summary>The event names (stable).</summary>
    public static class Events
    {
        /// <summary>On <see cref="Spans.Append"/>: a grain call failed with an unknown outcome and is sent again (same append ids).</summary>
        public const string Retry = "speclog.retry";

        /// <summary>On <see cref="Spans.Append"/>: the shard left the log; the records go to another shard.</summary>
        public const string Reroute = "speclog.reroute";

        /// <summary>On <see cref="Spans.Send"/>: the replica called does not lead its shard; the call goes to the one it named.</summary>
        public const string Redirect = "speclog.redirect";

        /// <summary>On <see cref="Spans.ShardAppend"/>: the call's records are durable (fsync'd; on a majority when replicated).</summary>
        public const string Durable = "speclog.durable";

        /// <summary>On <see cref="Spans.ShardAppend"/>: the records are durable and positioned: delivered speculatively with these GSNs.</summary>
        public const string Speculative = "speclog.speculative";

        /// <summary>On <see cref="Spans.ShardAppend"/>: the report completing the records' cut was sent.</summary>
        public const string Reported = "speclog.reported";

        /// <summary>On <see cref="Spans.ShardAppend"/>: the ordering layer committed the records' cut (the GSNs are final).</summary>
        public const string Committed = "speclog.committed";
    }

    /// <summary>The tag names (stable).</summary>
    public static class Tags
    {
        /// <summary>The shard.</summary>
        public const string Shard = "speclog.shard";

        /// <summary>The shard replica called (replicated shards).</summary>
        public const string Replica = "speclog.replica";

        /// <summary>The GSN of a single append.</summary>
        public const string Gsn = "speclog.gsn";

        /// <summary>The first GSN of a batch.</summary>
        public const string FirstGsn = "speclog.gsn.first";

        /// <summary>The last GSN of a batch.</summary>
        public const string LastGsn = "speclog.gsn.last";

        /// <summary>Records carried (an append call, a grain call).</summary>
        public const string Records = "speclog.records";

        /// <summary>The first slot (shard position) of a call's records.</summary>
        public const string FirstSlot = "speclog.slot.first";

        /// <summary>Which try of a grain call this is (1 first).</summary>
        public const string Attempt = "speclog.attempt";

        /// <summary>A report's sequence number (with the shard, its id in the ordering layer).</summary>
        public const string ReportSeq = "speclog.report.seq";

        /// <summary>
        /// On a report: the cuts it completed (cuts below it are complete on the shard). On <see cref="Spans.ShardOrder"/>:
        /// the cuts that must be committed for the call's records (its last record lies in the cut below it).
        /// </summary>
        public const string Cut = "speclog.cut";

        /// <summary>Cuts committed (the committed cut).</summary>
        public const string CommittedCut = "speclog.cut.committed";

        /// <summary>Durable slots of the shard.</summary>
        public const string DurableSlots = "speclog.slots.durable";

        /// <summary>Append calls a report covers.</summary>
        public const string Appends = "speclog.appends";

        /// <summary>The ordering replica (Copilot).</summary>
        public const string OrderingReplica = "speclog.ordering.replica";

        /// <summary>On <see cref="Spans.Ordering"/>: the replica stopped waiting for the report's execution (it deactivated, or too many waited).</summary>
        public const string Abandoned = "speclog.abandoned";
    }

    /// <summary>
    /// Starts a span under <paramref name="parent"/> without making it <see cref="Activity.Current"/>: for spans of work
    /// shared by many (a report, a batch) or recorded from elsewhere later, which must not become the parent of what runs next.
    /// </summary>
    public static Activity? StartDetached(string name, ActivityKind kind, ActivityContext parent, IEnumerable<ActivityLink>? links = null)
    {
        var previous = Activity.Current;
        var activity = Source.StartActivity(name, kind, parent, tags: null, links: links);
        if (activity is not null)
        {
            Activity.Current = previous;
        }

        return activity;
    }

    /// <summary>
    /// Stops a span started with <see cref="StartDetached"/>, possibly in another flow, leaving
    /// <see cref="Activity.Current"/> as it is (<see cref="Activity.Stop"/> would restore the span current when it started).
    /// </summary>
    public static void StopDetached(Activity activity)
    {
        ArgumentNullException.ThrowIfNull(activity);
        var current = Activity.Current;
        activity.Stop();
        if (!ReferenceEquals(Activity.Current, current))
        {
            Activity.Current = current;
        }
    }

    /// <summary>Puts <paramref name="activity"/>'s context into the request context for the grain call made next in this flow.</summary>
    public static void Inject(Activity activity)
    {
        ArgumentNullException.ThrowIfNull(activity);
        if (activity.IdFormat == ActivityIdFormat.W3C && activity.Id is { } id)
        {
            RequestContext.Set(ContextKey, id);
        }
    }

    /// <summary>
    /// Takes the caller's span context out of the request context (so it does not travel on with the calls this grain
    /// makes next); default when there is none. Allocates nothing when there is none.
    /// </summary>
    public static ActivityContext Extract()
    {
        if (RequestContext.Get(ContextKey) is not string traceParent)
        {
            return default;
        }

        RequestContext.Remove(ContextKey);
        return ActivityContext.TryParse(traceParent, null, isRemote: true, out var context) ? context : default;
    }

    /// <summary>Marks <paramref name="activity"/> failed with <paramref name="error"/>; returns false (for use as an exception filter).</summary>
    public static bool Failed(Activity? activity, Exception error)
    {
        if (activity is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, error.Message);
            activity.AddException(error);
        }

        return false;
    }
}
