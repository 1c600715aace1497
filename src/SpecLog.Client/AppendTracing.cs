using System.Diagnostics;

namespace SpecLog.Client;

/// <summary>
/// The client's side of <see cref="SpecLogTracing"/>: the send span of a grain call carrying appends, its context put
/// into the call's request context, and retries as events. Every method does nothing (and allocates nothing) when given
/// no span or when the current span is not a send span.
/// </summary>
internal static class AppendTracing
{
    /// <summary>
    /// Starts the span of one grain call carrying appends (it becomes <see cref="Activity.Current"/> for the call, so
    /// <see cref="InjectSend"/> finds it): a child of <paramref name="first"/>'s append span, linked to the other appends
    /// it carries. When the sampler gives it no span (none of its appends is recorded), <paramref name="first"/> becomes
    /// current instead, so its context (and that decision) still goes with the call.
    /// </summary>
    public static Activity? StartSend(Activity first, List<ActivityLink>? links, int shard, int records, int attempt)
    {
        var call = SpecLogTracing.Source.StartActivity(SpecLogTracing.Spans.Send, ActivityKind.Client, first.Context, tags: null, links: links);
        if (call is null)
        {
            Activity.Current = first;
            return null;
        }

        call.SetTag(SpecLogTracing.Tags.Shard, shard);
        call.SetTag(SpecLogTracing.Tags.Records, records);
        call.SetTag(SpecLogTracing.Tags.Attempt, attempt);
        return call;
    }

    /// <summary>
    /// Just before a grain call carrying appends: the current send span (if that is what is current) goes into the
    /// call's request context, so the shard's span joins its trace. When the sampler gave the call no span (its append
    /// is not recorded), the current append span goes instead, so the shard learns that decision rather than taking
    /// its own. Called inside the async method making the call, so the request context entry ends with it.
    /// </summary>
    public static void InjectSend(int replica, int replicas)
    {
        if (Activity.Current is { } call && ReferenceEquals(call.Source, SpecLogTracing.Source))
        {
            if (call.OperationName == SpecLogTracing.Spans.Send)
            {
                if (replicas > 1)
                {
                    call.SetTag(SpecLogTracing.Tags.Replica, replica);
                }

                SpecLogTracing.Inject(call);
            }
            else if (call.OperationName == SpecLogTracing.Spans.Append)
            {
                SpecLogTracing.Inject(call);
            }
        }
    }

    /// <summary>The replica called did not lead its shard: an event on the current send span.</summary>
    public static void Redirected(int replica)
    {
        if (Activity.Current is { } call && IsSend(call))
        {
            call.AddEvent(new ActivityEvent(SpecLogTracing.Events.Redirect, tags: new ActivityTagsCollection { [SpecLogTracing.Tags.Replica] = replica }));
        }
    }

    /// <summary>A grain call carrying the append failed with an unknown outcome and will be sent again: an event on the append's span.</summary>
    public static void Retry(Activity? append, Exception error, int attempt)
    {
        append?.AddEvent(new ActivityEvent(SpecLogTracing.Events.Retry, tags: new ActivityTagsCollection
        {
            [SpecLogTracing.Tags.Attempt] = attempt,
            ["exception.type"] = error.GetType().FullName,
            ["exception.message"] = error.Message,
        }));
    }

    private static bool IsSend(Activity activity) =>
        ReferenceEquals(activity.Source, SpecLogTracing.Source) && activity.OperationName == SpecLogTracing.Spans.Send;
}
