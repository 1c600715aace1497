using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using SpecLog.Bench.Reporting;
using SpecLog.Bench.Workloads;
using SpecLog.Client;
using SpecLog.FixAnte;

namespace SpecLog.Bench.Scenarios;

/// <summary>
/// Filtered subscriptions (issue 11): records carry one of <c>--tags</c> tags in turn; a GSN-ordered subscription to
/// the whole log and a GSN-ordered subscription filtered at the shards to one tag run side by side in the same run,
/// and both time the same records (those of the filtered tag): delivery from the append's scheduled start to the
/// subscriber. The filtered stream should be as fast as the whole log's, while carrying only its tag's records.
/// </summary>
public sealed class FilterScenario : IScenario
{
    private static readonly string[] s_latestKeys =
        ["filter_delivery_p50_ms_whole", "filter_delivery_p50_ms_filtered", "filter_delivery_ratio", "filter_records_share"];

    public string Name => "filter";

    public string Description => "GSN-ordered delivery, filtered at the shards to 1 of --tags tags vs the whole log, side by side [--rate 2000 --seconds 5 --warmup 1 --tags 10 --record-size 100 --shards 4 --out bench/results]";

    public async Task<int> RunAsync(BenchArgs args)
    {
        var rate = args.GetDouble("rate", 2000);
        var seconds = args.GetDouble("seconds", 5);
        var warmup = args.GetDouble("warmup", 1);
        var tagCount = args.GetInt("tags", 10);
        var recordSize = args.GetInt("record-size", 100);
        var shards = args.GetInt("shards", 4);
        var outDir = args.Get("out") ?? Path.Combine("bench", "results");
        if (rate <= 0 || seconds <= 0 || warmup < 0 || tagCount < 2 || recordSize < DeliveryProbe.HeaderBytes || shards < 1)
        {
            throw new ArgumentException("--rate, --seconds and --shards must be positive, --warmup not negative, --tags at least 2, --record-size at least 9.");
        }

        var report = new BenchReport("Filtered subscriptions: delivery of a filtered stream vs the whole log");
        Console.WriteLine($"filter: {rate:0} appends/s for {warmup} + {seconds} s, {tagCount} tags in turn, {shards} shards; machine: {report.Machine.Describe()}");
        await using var bench = await BenchCluster.StartAsync(1, o =>
        {
            o.ShardCount = shards;
            o.Fsync = true;
            o.SegmentSize = 16L << 20;
            o.Ordering.Mode = OrderingMode.FixAnte;
        });
        var client = bench.Client;
        var first = new byte[recordSize];
        await client.AppendAsync(first, "t0"); // activates the shards and the sequencer (not measured: flag 0)
        var start = (await bench.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync()).CommittedGsn;

        using var stop = new CancellationTokenSource();
        var whole = new Stream("whole log");
        var filtered = new Stream("filtered to t0");
        var wholeTask = whole.RunAsync(client.SubscribeAsync(start, stop.Token), stop.Token);
        var filteredTask = filtered.RunAsync(client.SubscribeAsync(RecordFilter.ForTags("t0"), start, stop.Token), stop.Token);

        var total = (long)Math.Round((warmup + seconds) * rate);
        var warmupCount = (long)Math.Round(warmup * rate);
        var inFlight = new List<Task>();
        long measured = 0, failed = 0;
        var begin = Stopwatch.GetTimestamp();
        await OpenLoopPacer.RunAsync(shards, rate / shards, begin, begin + (long)(total * (double)Stopwatch.Frequency / rate), (appender, k, due) =>
        {
            var i = k * shards + appender;
            var tag = $"t{i % tagCount}";
            var payload = new byte[recordSize];
            BinaryPrimitives.WriteInt64LittleEndian(payload, due);
            var timed = tag == "t0" && i >= warmupCount;
            payload[8] = timed ? (byte)1 : (byte)0;
            measured += timed ? 1 : 0;
            inFlight.Add(Append(payload, tag, appender % shards));
        });

        async Task Append(byte[] payload, string tag, int shard)
        {
            try
            {
                await client.AppendAsync(payload, tag, shard);
            }
            catch (Exception)
            {
                Interlocked.Increment(ref failed);
            }
        }

        await Task.WhenAll(inFlight);
        var waited = Stopwatch.StartNew();
        while ((whole.Timed < measured || filtered.Timed < measured) && waited.Elapsed < TimeSpan.FromSeconds(15))
        {
            await Task.Delay(20);
        }

        await stop.CancelAsync();
        await Task.WhenAll(wholeTask, filteredTask);

        var w = LatencySummary.FromTicks(whole.Delivery);
        var f = LatencySummary.FromTicks(filtered.Delivery);
        var section = report.AddSection("GSN-ordered delivery, whole log vs filtered at the shards");
        section.AddText(string.Create(CultureInfo.InvariantCulture,
            $"One embedded silo ({shards} shards, fsync on, SpecLog), {rate:0} appends/s open loop for {warmup} s untimed then {seconds} s, {recordSize} B records tagged t0 … t{tagCount - 1} in turn. ")
            + "Two GSN-ordered subscriptions run at once from the same position: the whole log (`SubscribeAsync`) and one filtered to tag t0 at the shards (`SubscribeAsync(RecordFilter.ForTags(\"t0\"))`). "
            + "Both time the same records (t0's, after the warm-up): from the append's scheduled start to the record's arrival at the subscriber.");
        var table = section.AddTable("subscription", "records received", "payload MB received", "t0 records timed", "delivery p50 (ms)", "p90", "p99", "max");
        foreach (var (s, l) in new[] { (whole, w), (filtered, f) })
        {
            table.AddRow(s.Name, s.Records.ToString(CultureInfo.InvariantCulture), (s.Bytes / 1e6).ToString("0.00", CultureInfo.InvariantCulture),
                $"{s.Timed}/{measured}", l.P50Ms, l.P90Ms, l.P99Ms, l.MaxMs);
        }

        var ratio = f.P50Us / w.P50Us;
        var share = whole.Records == 0 ? double.NaN : (double)filtered.Records / whole.Records;
        section.AddText(string.Create(CultureInfo.InvariantCulture,
            $"Filtered ÷ whole-log delivery p50: **{ratio:0.00}×** (1 = as fast); the filtered subscriber received {share:P1} of the whole log's records. {failed} appends failed."));
        report.SetFigure("filter_delivery_p50_ms_whole", Math.Round(w.P50Us / 1000, 3));
        report.SetFigure("filter_delivery_p50_ms_filtered", Math.Round(f.P50Us / 1000, 3));
        report.SetFigure("filter_delivery_ratio", Math.Round(ratio, 3));
        report.SetFigure("filter_records_share", Math.Round(share, 4));
        report.Finish();
        Console.Write(report.ToMarkdown());
        var (md, json) = await report.WriteAsync(outDir, "filter");
        await report.MergeFiguresAsync(Path.Combine(Path.GetFullPath(outDir), "latest.json"), s_latestKeys);
        Console.WriteLine($"wrote {md} and {json}");
        return failed > 0 || whole.Timed < measured || filtered.Timed < measured ? 2 : 0;
    }

    /// <summary>One subscription's counts and the delivery latencies of its timed records.</summary>
    private sealed class Stream(string name)
    {
        public string Name { get; } = name;

        public LongHistogram Delivery { get; } = LatencySummary.NewHistogram();

        public long Records { get; private set; }

        public long Bytes { get; private set; }

        public long Timed => Interlocked.Read(ref _timed);

        private long _timed;

        public Task RunAsync(IAsyncEnumerable<SpecLogEvent> events, CancellationToken stop) => Task.Run(async () =>
        {
            try
            {
                await foreach (var e in events)
                {
                    if (e is not SpeculativeRecord r)
                    {
                        continue;
                    }

                    var now = Stopwatch.GetTimestamp();
                    Records++;
                    Bytes += r.Payload.Length;
                    if (r.Payload.Span[8] == 1)
                    {
                        LatencySummary.RecordTicks(Delivery, Stopwatch.GetElapsedTime(BinaryPrimitives.ReadInt64LittleEndian(r.Payload.Span), now).Ticks);
                        Interlocked.Increment(ref _timed);
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
        }, CancellationToken.None);
    }
}
