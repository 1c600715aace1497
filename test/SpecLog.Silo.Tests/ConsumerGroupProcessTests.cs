using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using SpecLog.Consumer;
using SpecLog.Samples;
using SpecLog.Samples.IntrusionDetection;

namespace SpecLog.Silo.Tests;

/// <summary>
/// A consumer group across processes: members of the intrusion-detection sample (<c>--group</c>) split a silo
/// process's shards, one member is killed with <c>kill -9</c> and the other takes its shards over, a third joins and
/// the shards are split again; the per-shard output files they share then hold every reading's output exactly once,
/// equal to what the model gives over the confirmed log.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class ConsumerGroupProcessTests(ITestOutputHelper log)
{
    private const int Shards = 4;
    private const int Readings = 4000;
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 300_000)]
    public async Task Members_split_the_shards_take_over_a_killed_members_and_rebalance_on_a_join_each_output_once()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = new TempFolder("speclog-group-");
        var root = temp.Path;
        var output = new ConcurrentQueue<string>();
        var outputs = Path.Combine(root, "outputs");
        var members = new List<Process>();
        try
        {
            await using var silo = SiloProcess.Start("silo", Path.Combine(root, "data"), Shards, output, "--SpecLog:Replication:Mode=Single");
            await Waits.UntilAsync(() => silo.IsUp, "the silo is up", StepTimeout, ct);
            await using var client = await TestClient.ConnectAsync(silo, StepTimeout, ct);
            string[] member = ["--gateway", $"{silo.GatewayPort}", "--role", "consume", "--name", "ids", "--group", "--outputs-dir", outputs];

            var a = SampleProcess.Start("SpecLogIntrusionDll", "a", output, member);
            var b = SampleProcess.Start("SpecLogIntrusionDll", "b", output, member);
            members.AddRange([a, b]);
            await Waits.UntilAsync(() => Held("a", output).Length == 2 && Held("b", output).Length == 2, "a and b hold two shards each", StepTimeout, ct);
            Assert.Equal([0, 1, 2, 3], Held("a", output).Concat(Held("b", output)).Order());

            // Readings go in while the members run; a dies with a third of the outputs released, b takes its shards.
            var app = SensorModel.App(Shards);
            var producer = Task.Run(async () =>
            {
                var started = Stopwatch.GetTimestamp();
                var pending = new List<Task<long>>();
                for (var i = 0; i < Readings; i++)
                {
                    var due = started + (long)(i / 400.0 * Stopwatch.Frequency);
                    while (Stopwatch.GetTimestamp() < due)
                    {
                        await Task.Delay(1, ct);
                    }

                    var (payload, shard) = app.Generate(i, LatencyHistogram.NowMicros());
                    pending.Add(client.Log.AppendAsync(payload, shard, ct));
                }

                await Task.WhenAll(pending);
            }, ct);
            await Waits.UntilAsync(() => Lines(outputs) >= Readings / 3, "a third of the outputs released", StepTimeout, ct);
            SampleProcess.Kill(a, output, "a");
            await Waits.UntilAsync(() => Held("b", output).Length == Shards, "b took a's shards over", StepTimeout, ct);

            // c joins: the shards are split again, b handing two over.
            var c = SampleProcess.Start("SpecLogIntrusionDll", "c", output, member);
            members.Add(c);
            await Waits.UntilAsync(() => Held("b", output).Length == 2 && Held("c", output).Length == 2, "b and c hold two shards each", StepTimeout, ct);
            await producer;
            await Waits.UntilAsync(() => Lines(outputs) >= Readings, "every output released", StepTimeout, ct);

            // Each shard's file holds its readings' outputs once each, as the model gives them over the confirmed log.
            var records = await client.Log.ReadRangeAsync(0, (await client.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync()).CommittedGsn, ct);
            Assert.Equal(Readings, records.Count);
            for (var shard = 0; shard < Shards; shard++)
            {
                var state = SensorModel.NewState();
                var buffer = new OutputBuffer<SensorEvent>();
                var expected = new List<string>();
                foreach (var r in records.Where(r => r.Shard == shard))
                {
                    buffer.Clear();
                    state = SensorModel.Apply(state, new ConsumedRecord(r.Gsn, r.Shard, r.Payload), buffer);
                    for (var i = 0; i < buffer.Count; i++)
                    {
                        expected.Add($"{r.Gsn} {i} {r.Shard} {buffer[i]}");
                    }
                }

                Assert.Equal(expected, File.ReadAllLines(OutputDirectory<SensorEvent>.FileOf(outputs, shard)));
            }
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, output));
            throw;
        }
        finally
        {
            foreach (var p in members.Where(p => !p.HasExited))
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(TimeSpan.FromSeconds(15));
            }
        }
    }

    /// <summary>The shards member <paramref name="name"/> said last that it holds (its progress line, every second).</summary>
    private static int[] Held(string name, ConcurrentQueue<string> output)
    {
        var line = output.LastOrDefault(l => l.StartsWith($"[{name} out] released ", StringComparison.Ordinal) && l.Contains(" holds shards [", StringComparison.Ordinal));
        if (line is null)
        {
            return [];
        }

        var list = line[(line.LastIndexOf('[') + 1)..line.LastIndexOf(']')];
        return [.. list.Split(", ", StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
    }

    private static int Lines(string directory) =>
        Directory.Exists(directory) ? Directory.EnumerateFiles(directory, "shard-*.out").Sum(f => File.ReadAllLines(f).Length) : 0;
}
