using System.Diagnostics;
using SpecLog.FixAnte;

namespace SpecLog.Server.Grains;

/// <summary>
/// The shard's side of <see cref="SpecLogTracing"/>: a span per append call, events as its records become durable,
/// speculatively positioned, reported and committed, and spans for the report that completed their cut and for their
/// wait for its commit. All of it is skipped, allocation-free, while nothing listens (no traced append is pending then:
/// <see cref="_traced"/> stays empty and every hook tests its count first).
/// </summary>
internal sealed partial class ShardGrain
{
    /// <summary>Traced appends (recorded spans) not yet committed, in slot order; completed ones leave from the head.</summary>
    private readonly Queue<PendingAppend> _traced = new();

    /// <summary>Report spans waiting for their cut's commit: the span and the slots its completed cut covers.</summary>
    private readonly Queue<(Activity Span, long Covered)> _openReports = new();

    /// <summary>
    /// Starts the span of an append call, detached (work the call triggers for many, a flush or a report, does not run
    /// under it): a child of the client's send span, taken from the request context (or of the current span, Orleans'
    /// own when its propagation is on). Null while nothing listens, or when the span records nothing.
    /// </summary>
    private Activity? StartAppendTrace(int records)
    {
        var caller = SpecLogTracing.Extract(); // taken out even while nothing listens here, so it travels no further
        if (!SpecLogTracing.Source.HasListeners())
        {
            return null;
        }

        var current = Activity.Current;
        var parent = caller == default || (current is not null && current.TraceId == caller.TraceId) ? current?.Context ?? default : caller;
        var span = SpecLogTracing.StartDetached(SpecLogTracing.Spans.ShardAppend, ActivityKind.Server, parent);
        if (span is null)
        {
            return null;
        }

        if (!span.IsAllDataRequested)
        {
            span.Stop(); // propagation only: nothing of it would be recorded
            return null;
        }

        if (_invalidReason is null)
        {
            span.SetTag(SpecLogTracing.Tags.Shard, _shard);
        }

        span.SetTag(SpecLogTracing.Tags.Records, records);
        if (Replicated)
        {
            span.SetTag(SpecLogTracing.Tags.Replica, _replica);
        }

        return span;
    }

    /// <summary>Ends an append call's span with its answer: its GSNs, or its error.</summary>
    private static async Task<long[]> TracedAsync(Activity span, Task<long[]> call)
    {
        try
        {
            var gsns = await call;
            if (gsns.Length > 0)
            {
                span.SetTag(SpecLogTracing.Tags.FirstGsn, gsns[0]);
                span.SetTag(SpecLogTracing.Tags.LastGsn, gsns[^1]);
            }

            return gsns;
        }
        catch (Exception e) when (SpecLogTracing.Failed(span, e))
        {
            throw; // not reached: the filter only records the failure
        }
        finally
        {
            span.Stop();
        }
    }

    /// <summary>A traced append's new records are pending: follow them through the stages.</summary>
    private void TrackTraced(PendingAppend pending)
    {
        pending.Trace!.SetTag(SpecLogTracing.Tags.FirstSlot, pending.FirstSlot);
        _traced.Enqueue(pending);
    }

    /// <summary>Records the durable and speculative stages the traced appends reached (after a flush, or windows learnt).</summary>
    private void TraceProgress()
    {
        var deliverable = _core.DeliverableSlots;
        foreach (var p in _traced)
        {
            if (p.EndSlot > _durableSlots && p.EndSlot > deliverable)
            {
                break; // later appends hold later slots: neither stage reached them either
            }

            if ((p.Traced & TraceStage.Durable) == 0 && p.EndSlot <= _durableSlots)
            {
                p.Traced |= TraceStage.Durable;
                p.Trace!.AddEvent(new ActivityEvent(SpecLogTracing.Events.Durable, tags: new ActivityTagsCollection { [SpecLogTracing.Tags.DurableSlots] = _durableSlots }));
            }

            if ((p.Traced & TraceStage.Speculative) == 0 && p.EndSlot <= deliverable)
            {
                p.Traced |= TraceStage.Speculative;
                p.Trace!.AddEvent(new ActivityEvent(SpecLogTracing.Events.Speculative, tags: new ActivityTagsCollection
                {
                    [SpecLogTracing.Tags.FirstGsn] = _core.History.TryGsnOfSlot(_shard, p.FirstSlot),
                }));
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="report"/> to the ordering layer. When it completes the cut of traced appends not reported
    /// before, it is sent under a report span (a child of the first of them, linked to all) whose context goes with it,
    /// and each of them gets a span for its wait for the commit, linked to the report span.
    /// </summary>
    private void SendToOrdering(ShardReport report)
    {
        if (_traced.Count == 0)
        {
            ordering.SendReport(report);
            return;
        }

        var covered = _options.Ordering.Mode == OrderingMode.FixAnte
            ? Math.Min(report.DurableSlots, _core.History.SlotsBeforeCut(_shard, Math.Max(_core.LastReportedCut, _core.History.FirstCut)))
            : report.DurableSlots;
        List<PendingAppend>? reported = null;
        foreach (var p in _traced)
        {
            if (p.EndSlot > covered)
            {
                break;
            }

            if ((p.Traced & TraceStage.Reported) == 0 && !p.Task.IsCompleted)
            {
                (reported ??= []).Add(p);
            }
        }

        if (reported is null)
        {
            ordering.SendReport(report);
            return;
        }

        var links = new ActivityLink[reported.Count];
        for (var i = 0; i < links.Length; i++)
        {
            links[i] = new ActivityLink(reported[i].Trace!.Context);
        }

        var span = SpecLogTracing.StartDetached(SpecLogTracing.Spans.ShardReport, ActivityKind.Producer, reported[0].Trace!.Context, links);
        var reportTags = new ActivityTagsCollection
        {
            [SpecLogTracing.Tags.ReportSeq] = report.ReportSeq,
            [SpecLogTracing.Tags.Cut] = _core.LastReportedCut,
        };
        foreach (var p in reported)
        {
            p.Traced |= TraceStage.Reported;
            p.Trace!.AddEvent(new ActivityEvent(SpecLogTracing.Events.Reported, tags: reportTags));
            p.Order = SpecLogTracing.StartDetached(
                SpecLogTracing.Spans.ShardOrder, ActivityKind.Internal, p.Trace.Context, span is null ? null : [new ActivityLink(span.Context)]);
            p.Order?.SetTag(SpecLogTracing.Tags.ReportSeq, report.ReportSeq);
            p.Order?.SetTag(SpecLogTracing.Tags.Cut, _options.Ordering.Mode == OrderingMode.FixAnte ? _core.History.CompletedCut(_shard, p.EndSlot - 1) + 1 : _core.LastReportedCut);
        }

        if (span is null)
        {
            ordering.SendReport(report);
            return;
        }

        span.SetTag(SpecLogTracing.Tags.Shard, _shard);
        span.SetTag(SpecLogTracing.Tags.ReportSeq, report.ReportSeq);
        span.SetTag(SpecLogTracing.Tags.Cut, _core.LastReportedCut);
        span.SetTag(SpecLogTracing.Tags.DurableSlots, report.DurableSlots);
        span.SetTag(SpecLogTracing.Tags.Appends, reported.Count);
        _openReports.Enqueue((span, covered));

        // The report's calls carry its context (and run under it, for Orleans' propagation); neither outlives them.
        var previous = Activity.Current;
        Activity.Current = span;
        SpecLogTracing.Inject(span);
        try
        {
            ordering.SendReport(report);
        }
        finally
        {
            RequestContext.Remove(SpecLogTracing.ContextKey);
            Activity.Current = previous;
        }
    }

    /// <summary>Commits reached the shard: traced appends and reports they cover end their ordering stage.</summary>
    private void TraceCommitted(long committedSlots)
    {
        if (_traced.Count == 0 && _openReports.Count == 0)
        {
            return;
        }

        TraceProgress(); // the windows the notice brought may position records, and committed ones are positioned

        var committedTags = new ActivityTagsCollection { [SpecLogTracing.Tags.CommittedCut] = _core.CommittedCut };
        while (_traced.TryPeek(out var p) && (p.Task.IsCompleted || p.EndSlot <= committedSlots))
        {
            _traced.Dequeue();
            if (p.EndSlot <= committedSlots && p.Task.IsCompletedSuccessfully)
            {
                p.Trace!.AddEvent(new ActivityEvent(SpecLogTracing.Events.Committed, tags: committedTags));
                if (p.Order is { } order)
                {
                    order.SetTag(SpecLogTracing.Tags.CommittedCut, _core.CommittedCut);
                    SpecLogTracing.StopDetached(order);
                }
            }
        }

        while (_openReports.TryPeek(out var r) && r.Covered <= committedSlots)
        {
            _openReports.Dequeue();
            r.Span.SetTag(SpecLogTracing.Tags.CommittedCut, _core.CommittedCut);
            SpecLogTracing.StopDetached(r.Span);
        }
    }

    /// <summary>The shard stops or its storage failed: open report spans end as failed (the appends fail themselves).</summary>
    private void FailTraces(Exception error)
    {
        while (_openReports.TryDequeue(out var r))
        {
            SpecLogTracing.Failed(r.Span, error);
            SpecLogTracing.StopDetached(r.Span);
        }

        _traced.Clear();
    }
}
