using System.Diagnostics;
using SpecLog.FixAnte;

namespace SpecLog.Server.Diagnostics;

/// <summary>The ordering layer's side of <see cref="SpecLogTracing"/>: a span for a traced report, from its arrival until executed.</summary>
internal static class OrderingTracing
{
    /// <summary>
    /// Takes the report's span context out of the request context (so the calls the ordering layer makes next do not
    /// carry it) and starts <see cref="SpecLogTracing.Spans.Ordering"/> under it, detached (it may end in a later call);
    /// null for an untraced report (allocating nothing) or while nothing listens here.
    /// </summary>
    public static Activity? Start(in ShardReport report, int replica)
    {
        var parent = SpecLogTracing.Extract();
        if (parent == default)
        {
            return null;
        }

        var span = SpecLogTracing.StartDetached(SpecLogTracing.Spans.Ordering, ActivityKind.Consumer, parent);
        if (span is not null)
        {
            span.SetTag(SpecLogTracing.Tags.Shard, report.Shard);
            span.SetTag(SpecLogTracing.Tags.ReportSeq, report.ReportSeq);
            if (replica >= 0)
            {
                span.SetTag(SpecLogTracing.Tags.OrderingReplica, replica);
            }
        }

        return span;
    }

    /// <summary>Ends the span of an executed report, with the committed cut it left.</summary>
    public static void Executed(Activity span, long committedCut)
    {
        span.SetTag(SpecLogTracing.Tags.CommittedCut, committedCut);
        SpecLogTracing.StopDetached(span);
    }
}
