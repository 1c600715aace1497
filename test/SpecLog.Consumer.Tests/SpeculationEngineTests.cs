using SpecLog.Consumer;

namespace SpecLog.Consumer.Tests;

/// <summary>
/// The engine against a reference: whatever mis-speculations, confirmations and restarts happen, the outputs released
/// are exactly those of applying the confirmed log in order, each once, and the final state is the reference's.
/// </summary>
public sealed class SpeculationEngineTests(ITestOutputHelper output)
{
    private const int Shards = 3;

    /// <summary>A running total per shard and overall; its outputs depend on the state, so a wrong rollback changes them.</summary>
    internal sealed class Totals
    {
        public long Sum;
        public long Count;
        public Dictionary<int, long> PerShard = [];

        public Totals Clone() => new() { Sum = Sum, Count = Count, PerShard = new Dictionary<int, long>(PerShard) };

        public override string ToString() => $"sum {Sum}, count {Count}, per shard [{string.Join(", ", PerShard.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}"))}]";
    }

    internal static Totals Apply(Totals s, ConsumedRecord r, OutputBuffer<string> outputs)
    {
        var v = BitConverter.ToInt32(r.Payload.Span);
        s.Sum += v;
        s.Count++;
        s.PerShard[r.Shard] = s.PerShard.GetValueOrDefault(r.Shard) + v;
        if (v % 3 == 0)
        {
            outputs.Emit($"{r.Gsn}: {v} makes {s.Sum}");
        }

        if (v % 7 == 0)
        {
            outputs.Emit($"{r.Gsn}: count {s.Count}");
        }

        return s;
    }

    /// <summary>A log of positions: a record (shard, value) or a no-op (null).</summary>
    private static (int Shard, int Value)?[] MakeLog(Random random, int length) =>
        Enumerable.Range(0, length).Select(_ => random.Next(10) < 8 ? ((int, int)?)(random.Next(Shards), random.Next(1, 100)) : null).ToArray();

    private static ConsumedRecord Record(long gsn, (int Shard, int Value) r) => new(gsn, r.Shard, BitConverter.GetBytes(r.Value));

    /// <summary>Applies the confirmed log (the records not lost) in order, independently of the engine.</summary>
    private static (List<(long, int, string)> Outputs, string State) Reference((int Shard, int Value)?[] log, ISet<long> lost)
    {
        var state = new Totals();
        var outputs = new List<(long, int, string)>();
        var buffer = new OutputBuffer<string>();
        for (var g = 0; g < log.Length; g++)
        {
            if (log[g] is { } r && !lost.Contains(g))
            {
                buffer.Clear();
                state = Apply(state, Record(g, r), buffer);
                for (var i = 0; i < buffer.Count; i++)
                {
                    outputs.Add((g, i, buffer[i]));
                }
            }
        }

        return (outputs, state.ToString());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(64)]
    public void A_mis_speculation_at_every_position_of_a_window_releases_exactly_the_confirmed_logs_outputs(int snapshotEvery)
    {
        var random = new Random(7);
        var log = MakeLog(random, 60);
        const int windowStart = 20, windowEnd = 50;
        for (var from = windowStart; from < windowEnd; from++)
        {
            for (var failed = 0; failed < Shards; failed++)
            {
                // The failed shard's records from `from` to the window's end are lost.
                var lost = new HashSet<long>(Enumerable.Range(from, windowEnd - from).Where(g => log[g]?.Shard == failed).Select(g => (long)g));
                var engine = new SpeculationEngine<Totals, string>(new Totals(), 0, Apply, t => t.Clone(), snapshotEvery);
                var released = new List<ReleasedOutput<string>>();
                // Everything below the window is confirmed; the window's records are all delivered speculatively first.
                for (var g = 0; g < windowEnd; g++)
                {
                    if (log[g] is { } r)
                    {
                        engine.Apply(Record(g, r), released);
                    }

                    if (g == windowStart - 1)
                    {
                        engine.Confirm(windowStart, released);
                    }
                }

                engine.RollBack(from);
                for (var g = from; g < log.Length; g++)
                {
                    if (log[g] is { } r && !lost.Contains(g))
                    {
                        engine.Apply(Record(g, r), released);
                    }
                }

                engine.Confirm(log.Length, released);
                var (expected, state) = Reference(log, lost);
                Assert.Equal(expected, released.Select(o => (o.Gsn, o.Index, o.Output)).ToList());
                Assert.Equal(state, engine.State.ToString());
                Assert.Equal(0, engine.Held);
            }
        }
    }

    /// <summary>
    /// GSN-ordered: confirmations never pass the records delivered. Per shard (<paramref name="gsnOrdered"/> false): the
    /// log's confirmations run ahead of this shard's records, which then arrive already confirmed.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Randomised_mis_speculations_confirmations_and_restarts_release_every_output_once(bool gsnOrdered)
    {
        var seed = Environment.GetEnvironmentVariable("CONSUMER_SEED") is { } s ? int.Parse(s) : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay with CONSUMER_SEED={seed})");
        var random = new Random(seed);
        for (var run = 0; run < 300; run++)
        {
            var log = MakeLog(random, 200);
            var lost = new HashSet<long>();
            var snapshotEvery = random.Next(1, 20);
            var engine = new SpeculationEngine<Totals, string>(new Totals(), 0, Apply, t => t.Clone(), snapshotEvery, gsnOrdered: gsnOrdered);
            var released = new List<ReleasedOutput<string>>();
            var next = 0L; // the next position the "subscription" delivers
            var confirmedEver = 0L; // the log's confirmed prefix (a restarted engine may know less of it)
            var misSpeculations = 0;
            var restarts = 0;
            var steps = 0;
            var trace = new Queue<string>();
            void Trace(string what)
            {
                trace.Enqueue($"{what} -> next {next}, engine at {engine.NextGsn}, confirmed {engine.ConfirmedThrough}, released {engine.ReleasedThrough}, base {engine.BaseSnapshot.Position}");
                if (trace.Count > 25)
                {
                    trace.Dequeue();
                }
            }

            while (next < log.Length || engine.ConfirmedThrough < log.Length || engine.NextGsn < log.Length && !gsnOrdered && engine.ConfirmedThrough < log.Length)
            {
                Assert.True(++steps < 100_000, $"seed {seed} run {run}: no progress:\n{string.Join("\n", trace)}");
                var dice = random.Next(100);
                if (dice < 60 && next < log.Length)
                {
                    if (log[next] is { } r && !lost.Contains(next))
                    {
                        engine.Apply(Record(next, r), released);
                    }

                    next++;
                    Trace("deliver");
                }
                else if (dice < 85)
                {
                    // Confirm a delivered prefix.
                    // GSN-ordered: a confirmation covers delivered positions only (after a restart, some it knew
                    // already). Per shard: the log's confirmations may run ahead of this shard's records.
                    var low = Math.Min(next, engine.ConfirmedThrough);
                    var to = gsnOrdered
                        ? low + random.Next(0, (int)(next - low) + 1)
                        : Math.Min(log.Length, low + random.Next(0, (int)(next - low) + 11));
                    engine.Confirm(to, released);
                    confirmedEver = Math.Max(confirmedEver, to);
                    Trace($"confirm {to}");
                }
                else if (dice < 95)
                {
                    if (next <= confirmedEver)
                    {
                        continue; // nothing unconfirmed was delivered: nothing a failure could take back
                    }

                    // A shard fails: its records from some unconfirmed delivered position to a window end are lost.
                    var from = confirmedEver + random.Next((int)(next - confirmedEver));
                    var to = Math.Min(log.Length, from + random.Next(1, 40));
                    var shard = random.Next(Shards);
                    for (var g = from; g < to; g++)
                    {
                        if (log[g]?.Shard == shard)
                        {
                            lost.Add(g);
                        }
                    }

                    engine.RollBack(from);
                    next = from; // the surviving records of the range come again
                    misSpeculations++;
                    Trace($"mis-speculation from {from} of shard {shard}");
                }
                else if (restarts < 5 && random.Next(10) == 0)
                {
                    // The consumer restarts from what a checkpoint would hold.
                    var (position, state) = engine.BaseSnapshot;
                    engine = new SpeculationEngine<Totals, string>(state.Clone(), position, Apply, t => t.Clone(), snapshotEvery, engine.ReleasedThrough, gsnOrdered);
                    next = position;
                    restarts++;
                    Trace("restart");
                }

                Assert.True(engine.Kept <= engine.Unconfirmed + snapshotEvery + 1, $"seed {seed} run {run}: {engine.Kept} records kept, {engine.Unconfirmed} unconfirmed");
            }

            var (expected, expectedState) = Reference(log, lost);
            Assert.True(
                expected.SequenceEqual(released.Select(o => (o.Gsn, o.Index, o.Output))),
                $"seed {seed} run {run} ({misSpeculations} mis-speculations, {restarts} restarts): released {released.Count} outputs, expected {expected.Count}");
            Assert.Equal(expectedState, engine.State.ToString());
        }
    }

    [Fact]
    public void Outputs_are_held_until_confirmed_and_dropped_when_rolled_back()
    {
        var engine = new SpeculationEngine<Totals, string>(new Totals(), 0, Apply, t => t.Clone(), 8);
        var released = new List<ReleasedOutput<string>>();
        engine.Apply(Record(0, (0, 3)), released);
        engine.Apply(Record(1, (1, 6)), released);
        engine.Apply(Record(3, (2, 9)), released);
        Assert.Empty(released);
        Assert.Equal(3, engine.Held);

        engine.Confirm(1, released);
        Assert.Equal(["0: 3 makes 3"], released.Select(o => o.Output));
        Assert.Equal(1, engine.ReleasedThrough);

        Assert.Equal(2, engine.RollBack(1));
        Assert.Equal(3, engine.State.Sum);
        Assert.Equal(0, engine.Held);
        Assert.Equal(2, engine.DiscardedOutputs);

        engine.Apply(Record(3, (2, 9)), released);
        engine.Confirm(4, released);
        Assert.Equal(["0: 3 makes 3", "3: 9 makes 12"], released.Select(o => o.Output));
    }

    [Fact]
    public void A_record_that_arrives_already_confirmed_is_released_at_once()
    {
        var engine = new SpeculationEngine<Totals, string>(new Totals(), 0, Apply, t => t.Clone(), 8, gsnOrdered: false);
        var released = new List<ReleasedOutput<string>>();
        engine.Confirm(10, released);
        engine.Apply(Record(4, (0, 21)), released);
        Assert.Equal(["4: 21 makes 21", "4: count 1"], released.Select(o => o.Output));
        Assert.Equal([0, 1], released.Select(o => o.Index));
        Assert.Equal(5, engine.ReleasedThrough);
    }

    [Fact]
    public void Bad_sequences_are_refused_with_a_clear_error()
    {
        var engine = new SpeculationEngine<Totals, string>(new Totals(), 0, Apply, t => t.Clone(), 8);
        var released = new List<ReleasedOutput<string>>();
        engine.Apply(Record(5, (0, 1)), released);
        var late = Assert.Throws<InvalidOperationException>(() => engine.Apply(Record(4, (0, 1)), released));
        Assert.Contains("GSN order", late.Message);

        engine.Confirm(6, released);
        var tooLow = Assert.Throws<InvalidOperationException>(() => engine.RollBack(3));
        Assert.Contains("confirmed prefix", tooLow.Message);
    }

    [Fact]
    public void A_restart_past_released_outputs_does_not_release_them_again()
    {
        var engine = new SpeculationEngine<Totals, string>(new Totals(), 0, Apply, t => t.Clone(), 100);
        var released = new List<ReleasedOutput<string>>();
        for (var g = 0; g < 10; g++)
        {
            engine.Apply(Record(g, (0, 3)), released);
        }

        engine.Confirm(6, released);
        Assert.Equal(6, released.Count);
        var (position, state) = engine.BaseSnapshot;
        Assert.Equal(0, position); // snapshots every 100 records: the base is still the start

        var restarted = new SpeculationEngine<Totals, string>(state.Clone(), position, Apply, t => t.Clone(), 100, engine.ReleasedThrough);
        var again = new List<ReleasedOutput<string>>();
        for (var g = 0; g < 10; g++)
        {
            restarted.Apply(Record(g, (0, 3)), again);
        }

        restarted.Confirm(10, again);
        Assert.Equal(Enumerable.Range(6, 4).Select(g => (long)g), again.Select(o => o.Gsn));
        Assert.Equal(engine.State.ToString(), restarted.State.ToString());
    }
}
