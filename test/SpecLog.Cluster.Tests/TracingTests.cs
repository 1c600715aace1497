using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Options;
using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>The traces of appends on the shared cluster (the ordering layer replicated with Copilot).</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class TracingTests(ClusterFixture fixture) : TracingTestsBase(fixture);

/// <summary>The same with the unreplicated single sequencer.</summary>
public sealed class SingleSequencerTracingTests(SingleSequencerClusterFixture fixture)
    : TracingTestsBase(fixture), IClassFixture<SingleSequencerClusterFixture>;

/// <summary>
/// Each append is traced from the client's call through the shard and the ordering layer to its acknowledgement
/// (<see cref="SpecLogTracing"/>). Listeners are process-wide and other tests append at the same time: each append here
/// runs under a root span of this test's own source, and only spans of those traces (or linked to them) are examined.
/// </summary>
public abstract class TracingTestsBase(ClusterFixture fixture)
{
    private static readonly ActivitySource s_testSource = SpanCollector.TestSource;

    /// <summary>
    /// Span ends are start (wall clock) plus a monotonic duration: spans of one process may disagree by a few
    /// microseconds about the same instant. Far less than any stage here, so ordering checks allow this much.
    /// </summary>
    private static readonly TimeSpan s_clockSlack = TimeSpan.FromMilliseconds(1);

    [Fact]
    public async Task EachAppend_IsTraced_FromClientThroughShardAndOrdering_ToItsAcknowledgement()
    {
        var ct = TestContext.Current.CancellationToken;
        using var spans = new SpanCollector();

        // One append alone (its call, report and ordering all in its own trace), then concurrent ones through a client
        // with one call in flight per shard (so they travel in shared calls and reports), then a batch append.
        var appends = new List<(ActivityTraceId Trace, long Gsn)> { await TracedAppendAsync(fixture.Client, "alone", 0, ct) };
        var oneCall = new SpecLogClient(fixture.Grains, Options.Create(new SpecLogClientOptions { MaxAppendsInFlightPerShard = 1 }));
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 24).Select(i => TracedAppendAsync(oneCall, $"concurrent-{i}", i % 2, ct)));
        appends.AddRange(concurrent);
        using (var root = s_testSource.StartActivity("test.append-batch"))
        {
            var gsns = await fixture.Client.AppendBatchAsync([Payload.Make("tracing", 1, 0), Payload.Make("tracing", 1, 1)], 1, ct);
            appends.Add((root!.TraceId, gsns[0]));
        }

        foreach (var (trace, gsn) in appends)
        {
            await AssertTracedAsync(spans, trace, gsn, ct);
        }

        // Some calls carried several appends: linked to all but the first.
        var batched = spans.Snapshot().Where(a => a.OperationName == SpecLogTracing.Spans.Send && a.Links.Any(l => concurrent.Any(c => c.Trace == l.Context.TraceId)));
        Assert.NotEmpty(batched);

        // The append made alone shows client → shard → ordering → acknowledgement under one trace id.
        var alone = appends[0].Trace;
        var names = spans.Snapshot().Where(a => a.TraceId == alone).Select(a => a.OperationName).ToHashSet();
        Assert.Superset(
            new HashSet<string> { SpecLogTracing.Spans.Append, SpecLogTracing.Spans.Send, SpecLogTracing.Spans.ShardAppend, SpecLogTracing.Spans.ShardOrder, SpecLogTracing.Spans.ShardReport, SpecLogTracing.Spans.Ordering },
            names);
    }

    [Fact]
    public async Task FailedAppends_RecordAnErrorStatus()
    {
        var ct = TestContext.Current.CancellationToken;
        using var spans = new SpanCollector();

        // Refused by the client: an unknown shard, an oversized record.
        ActivityTraceId unknown, oversized, refused;
        using (var root = s_testSource.StartActivity("test.unknown-shard"))
        {
            unknown = root!.TraceId;
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Client.AppendAsync(Payload.Make("tracing", 9, 0), 999, ct));
        }

        using (var root = s_testSource.StartActivity("test.oversized"))
        {
            oversized = root!.TraceId;
            await Assert.ThrowsAsync<ArgumentException>(() => fixture.Client.AppendAsync(new byte[SpecLogOptions.DEFAULT_MAX_RECORD_SIZE + 1], 0, ct));
        }

        // Refused by the shard: more records in one call than a batch may hold (the client leaves that check to it).
        using (var root = s_testSource.StartActivity("test.shard-refusal"))
        {
            refused = root!.TraceId;
            var tooMany = Enumerable.Range(0, SpecLogOptions.DEFAULT_MAX_BATCH_RECORDS + 1).Select(_ => (ReadOnlyMemory<byte>)new byte[] { 1 }).ToArray();
            var e = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Client.AppendBatchAsync(tooMany, 0, ct));
            Assert.Contains("at most", e.Message, StringComparison.Ordinal);
        }

        foreach (var trace in new[] { unknown, oversized, refused })
        {
            var append = Assert.Single(spans.Snapshot(), a => a.TraceId == trace && a.OperationName == SpecLogTracing.Spans.Append);
            Assert.Equal(ActivityStatusCode.Error, append.Status);
            Assert.Contains(append.Events, e => e.Name == "exception");
        }

        Assert.Contains("Unknown shard 999", Single(spans, unknown, SpecLogTracing.Spans.Append).StatusDescription, StringComparison.Ordinal);

        // The shard's refusal is on the grain call's span and on the shard's, in the append's trace.
        var send = Single(spans, refused, SpecLogTracing.Spans.Send);
        var shard = Single(spans, refused, SpecLogTracing.Spans.ShardAppend);
        Assert.Equal(ActivityStatusCode.Error, send.Status);
        Assert.Equal(ActivityStatusCode.Error, shard.Status);
        Assert.Equal(send.SpanId, shard.ParentSpanId);
        Assert.Contains("at most", shard.StatusDescription, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAppendTheClientDoesNotRecord_IsNotRecordedByTheShard()
    {
        // The collector's sampler is parent based: a span is recorded when its parent is (or it has none), except the
        // test's "unsampled" roots. The client's decision must reach the shard with the call.
        var ct = TestContext.Current.CancellationToken;
        using var spans = new SpanCollector();
        ActivityTraceId trace;
        using (var root = s_testSource.StartActivity(SpanCollector.UnsampledRoot))
        {
            Assert.NotNull(root);
            Assert.False(root.Recorded);
            trace = root.TraceId;
            await fixture.Client.AppendAsync(Payload.Make("tracing", 0, 7), 0, ct);
        }

        var ours = spans.Snapshot().Where(a => a.TraceId == trace).ToList();
        Assert.Contains(ours, a => a.OperationName == SpecLogTracing.Spans.ShardAppend); // the context reached the shard
        Assert.DoesNotContain(ours, a => a.Recorded);
        Assert.DoesNotContain(spans.Snapshot(), a => a.Recorded && a.Links.Any(l => l.Context.TraceId == trace));
    }

    private static async Task<(ActivityTraceId Trace, long Gsn)> TracedAppendAsync(SpecLogClient client, string name, int shard, CancellationToken ct)
    {
        using var root = s_testSource.StartActivity("test.append");
        var gsn = await client.AppendAsync(Payload.Make("tracing", shard, name.GetHashCode(StringComparison.Ordinal)), shard, ct);
        return (root!.TraceId, gsn);
    }

    /// <summary>The spans of the append with root trace <paramref name="trace"/> and result <paramref name="gsn"/>, and how they relate.</summary>
    private static async Task AssertTracedAsync(SpanCollector spans, ActivityTraceId trace, long gsn, CancellationToken ct)
    {
        // Spans of the ordering layer may end after the acknowledgement (a second pilot executes the report later).
        Activity? ordering = null;
        Activity client = null!, send = null!, shard = null!, order = null!, report = null!;
        for (var deadline = DateTime.UtcNow.AddSeconds(10); ; await Task.Delay(20, ct))
        {
            var all = spans.Snapshot();
            client = Assert.Single(all, a => a.TraceId == trace && a.OperationName == SpecLogTracing.Spans.Append);
            Assert.Equal(ActivityStatusCode.Unset, client.Status);
            Assert.Equal(gsn, AsLong(client.GetTagItem(SpecLogTracing.Tags.Gsn) ?? client.GetTagItem(SpecLogTracing.Tags.FirstGsn)));

            // The grain call carrying it: its child, or (batched with others) linked to it.
            var c = client;
            send = Assert.Single(all, a => a.OperationName == SpecLogTracing.Spans.Send
                && ((a.TraceId == c.TraceId && a.ParentSpanId == c.SpanId) || a.Links.Any(l => l.Context.TraceId == c.TraceId && l.Context.SpanId == c.SpanId)));
            var s = send;
            shard = Assert.Single(all, a => a.OperationName == SpecLogTracing.Spans.ShardAppend && a.TraceId == s.TraceId && a.ParentSpanId == s.SpanId);
            Assert.Equal(ActivityStatusCode.Unset, shard.Status);
            Assert.InRange(gsn, AsLong(shard.GetTagItem(SpecLogTracing.Tags.FirstGsn)), AsLong(shard.GetTagItem(SpecLogTracing.Tags.LastGsn)));

            // Its wait for ordering, linked to the report that completed its cut, which links back to the shard's span.
            var h = shard;
            order = Assert.Single(all, a => a.OperationName == SpecLogTracing.Spans.ShardOrder && a.TraceId == h.TraceId && a.ParentSpanId == h.SpanId);
            var link = Assert.Single(order.Links);
            report = Assert.Single(all, a => a.OperationName == SpecLogTracing.Spans.ShardReport && a.SpanId == link.Context.SpanId);
            Assert.Contains(report.Links, l => l.Context.SpanId == h.SpanId && l.Context.TraceId == h.TraceId);
            var needed = AsLong(order.GetTagItem(SpecLogTracing.Tags.Cut));
            Assert.True(needed <= AsLong(report.GetTagItem(SpecLogTracing.Tags.Cut)), "the report completed the records' cut");
            Assert.True(AsLong(order.GetTagItem(SpecLogTracing.Tags.CommittedCut)) >= needed, "the commit covered the records' cut");

            var r = report;
            ordering = all.FirstOrDefault(a => a.OperationName == SpecLogTracing.Spans.Ordering && a.TraceId == r.TraceId && a.ParentSpanId == r.SpanId);
            if (ordering is not null || DateTime.UtcNow > deadline)
            {
                break;
            }
        }

        Assert.NotNull(ordering);

        // The shard's stages, in order.
        var events = shard.Events.ToDictionary(e => e.Name, e => e.Timestamp);
        Assert.True(events[SpecLogTracing.Events.Durable] <= events[SpecLogTracing.Events.Reported]);
        Assert.True(events[SpecLogTracing.Events.Durable] <= events[SpecLogTracing.Events.Speculative]);
        Assert.True(events[SpecLogTracing.Events.Reported] <= events[SpecLogTracing.Events.Committed]);

        // Nested in time: client ⊇ call ⊇ shard ⊇ ordering wait; the report is sent after the append arrived, and reaches
        // the ordering layer after it was sent (the report's span may end after this append's: its last cut may commit later).
        AssertWithin(client, send);
        AssertWithin(send, shard);
        AssertWithin(shard, order);
        Assert.True(report.StartTimeUtc >= shard.StartTimeUtc - s_clockSlack, "the report follows the append");
        Assert.True(ordering.StartTimeUtc >= report.StartTimeUtc - s_clockSlack, "the ordering layer receives the report after it was sent");
    }

    private static void AssertWithin(Activity outer, Activity inner)
    {
        Assert.True(inner.StartTimeUtc >= outer.StartTimeUtc - s_clockSlack, $"{inner.OperationName} starts within {outer.OperationName}");
        Assert.True(End(inner) <= End(outer) + s_clockSlack, $"{inner.OperationName} ends within {outer.OperationName}");
    }

    private static DateTime End(Activity a) => a.StartTimeUtc + a.Duration;

    private static long AsLong(object? tag) => Convert.ToInt64(tag ?? throw new InvalidOperationException("tag missing"), System.Globalization.CultureInfo.InvariantCulture);

    private static Activity Single(SpanCollector spans, ActivityTraceId trace, string name) =>
        Assert.Single(spans.Snapshot(), a => a.TraceId == trace && a.OperationName == name);
}

/// <summary>
/// Records every stopped span of the log's source and the tests' (process-wide, so callers filter by trace). Its sampler
/// is parent based: a span is recorded when its parent is, or when it has none, except <see cref="UnsampledRoot"/> roots.
/// </summary>
internal sealed class SpanCollector : IDisposable
{
    public const string TestSourceName = "SpecLog.Tests.Tracing";
    public const string UnsampledRoot = "test.unsampled";
    public static readonly ActivitySource TestSource = new(TestSourceName);

    private readonly ConcurrentQueue<Activity> _stopped = new();
    private readonly ActivityListener _listener;

    /// <param name="orleans">Whether Orleans' grain-call spans are recorded too.</param>
    public SpanCollector(bool orleans = false)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is SpecLogTracing.SourceName or TestSourceName
                || (orleans && source.Name == Orleans.Diagnostics.ActivitySources.ApplicationGrainActivitySourceName),
            Sample = static (ref ActivityCreationOptions<ActivityContext> o) =>
                o.Name == UnsampledRoot ? ActivitySamplingResult.PropagationData
                : o.Parent == default || o.Parent.TraceFlags.HasFlag(ActivityTraceFlags.Recorded) ? ActivitySamplingResult.AllDataAndRecorded
                : ActivitySamplingResult.PropagationData,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public List<Activity> Snapshot() => [.. _stopped];

    public void Dispose() => _listener.Dispose();
}

/// <summary>
/// The batcher's side of tracing, without a cluster: a grain call carrying several appends is the first one's child and
/// linked to the others, is current while it is made (so its context goes with it), and a retry is an event on each
/// append's span and a new call span.
/// </summary>
public sealed class BatcherTracingTests
{
    private long _seq;

    [Fact(Timeout = 30_000)]
    public async Task A_batched_call_links_its_appends_and_a_retry_is_an_event_and_a_new_call()
    {
        using var spans = new SpanCollector();
        var calls = new ConcurrentQueue<Activity?>();
        var firstSent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<long[]> Send(long[] seqs, byte[][] payloads, string?[]? tags, CancellationToken ct)
        {
            calls.Enqueue(Activity.Current);
            if (calls.Count == 1)
            {
                firstSent.TrySetResult();
                await release.Task.WaitAsync(ct); // holds the only call slot while the others queue
            }
            else if (calls.Count == 2)
            {
                throw new AppendOutcomeUnknownException("the shard's silo stopped"); // retried with the same ids
            }

            return [.. seqs.Select(s => 100 + s)];
        }

        var batcher = new AppendBatcher(Send, () => Interlocked.Increment(ref _seq), maxBatch: 16, maxInFlight: 1, callTimeout: TimeSpan.FromSeconds(10), retryDeadline: TimeSpan.FromSeconds(20), shard: 4);
        var ct = TestContext.Current.CancellationToken;
        Activity Append() => SpecLogTracing.Source.StartActivity(SpecLogTracing.Spans.Append)!;
        var a0 = Append();
        var first = batcher.AppendAsync([0], ct, trace: a0);
        await firstSent.Task;
        var a1 = Append();
        var second = batcher.AppendAsync([1], ct, trace: a1);
        var a2 = Append();
        var third = batcher.AppendAsync([2], ct, trace: a2);
        release.SetResult();
        await Task.WhenAll(first, second, third);
        foreach (var a in new[] { a0, a1, a2 })
        {
            a.Stop();
        }

        // Calls: a0 alone; a1 and a2 together, which fails once and is sent again.
        var sends = spans.Snapshot().Where(a => a.OperationName == SpecLogTracing.Spans.Send && (a.TraceId == a0.TraceId || a.TraceId == a1.TraceId)).OrderBy(a => a.StartTimeUtc).ToList();
        Assert.Equal(3, sends.Count);
        Assert.Equal([.. sends], calls.ToArray()); // each call was made with its span current (its context goes with it)
        Assert.Equal(a0.SpanId, sends[0].ParentSpanId);
        Assert.Empty(sends[0].Links);
        foreach (var (send, attempt) in new[] { (sends[1], 1), (sends[2], 2) })
        {
            Assert.Equal(a1.SpanId, send.ParentSpanId);
            Assert.Equal(a2.SpanId, Assert.Single(send.Links).Context.SpanId);
            Assert.Equal(attempt, send.GetTagItem(SpecLogTracing.Tags.Attempt));
            Assert.Equal(2, send.GetTagItem(SpecLogTracing.Tags.Records));
        }

        Assert.Equal(ActivityStatusCode.Error, sends[1].Status);
        Assert.Equal(ActivityStatusCode.Unset, sends[2].Status);
        foreach (var a in new[] { a1, a2 })
        {
            var retry = Assert.Single(a.Events, e => e.Name == SpecLogTracing.Events.Retry);
            Assert.Contains(retry.Tags, t => t.Key == SpecLogTracing.Tags.Attempt && Equals(t.Value, 1));
        }

        Assert.DoesNotContain(a0.Events, e => e.Name == SpecLogTracing.Events.Retry);
    }
}

/// <summary>
/// With Orleans' activity propagation on both sides (and its application source listened to), Orleans' grain-call
/// spans sit between the client's call span and the shard's, in the same trace.
/// </summary>
public sealed class OrleansPropagationTracingTests(OrleansPropagationClusterFixture fixture) : IClassFixture<OrleansPropagationClusterFixture>
{
    [Fact]
    public async Task Orleans_call_spans_sit_between_the_clients_call_and_the_shards_span()
    {
        var ct = TestContext.Current.CancellationToken;
        using var spans = new SpanCollector(orleans: true);
        ActivityTraceId trace;
        long gsn;
        using (var root = SpanCollector.TestSource.StartActivity("test.append"))
        {
            trace = root!.TraceId;
            gsn = await fixture.Client.AppendAsync(Payload.Make("tracing", 0, 1), 0, ct);
        }

        var ours = spans.Snapshot().Where(a => a.TraceId == trace).ToList();
        var send = Assert.Single(ours, a => a.OperationName == SpecLogTracing.Spans.Send);
        var outgoing = Assert.Single(ours, a => a.Source.Name == Orleans.Diagnostics.ActivitySources.ApplicationGrainActivitySourceName && a.Kind == ActivityKind.Client && a.ParentSpanId == send.SpanId);
        var incoming = Assert.Single(ours, a => a.Kind == ActivityKind.Server && a.ParentSpanId == outgoing.SpanId && a.Source.Name == outgoing.Source.Name);
        var shard = Assert.Single(ours, a => a.OperationName == SpecLogTracing.Spans.ShardAppend);
        Assert.Equal(incoming.SpanId, shard.ParentSpanId);
        Assert.Equal(gsn, Convert.ToInt64(shard.GetTagItem(SpecLogTracing.Tags.FirstGsn), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains(ours, a => a.OperationName == SpecLogTracing.Spans.ShardOrder && a.ParentSpanId == shard.SpanId);
    }
}

/// <summary>A one-silo cluster with Orleans' activity propagation on the silo and the client.</summary>
public sealed class OrleansPropagationClusterFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options) => options.Replication.Mode = SequencerReplication.Single;

    protected override void ConfigureSilo(Orleans.Hosting.ISiloBuilder silo) => silo.AddActivityPropagation();

    protected override void ConfigureClient(IClientBuilder client) => client.AddActivityPropagation();
}
