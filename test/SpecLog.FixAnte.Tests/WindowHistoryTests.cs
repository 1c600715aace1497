using System.Collections.Immutable;
using CsCheck;

namespace SpecLog.FixAnte.Tests;

public sealed class WindowHistoryTests
{
    /// <summary>Checks every public query of <paramref name="history"/> against the naive layout of the same windows.</summary>
    private static void CheckAgainstOracle(WindowHistory history, NaiveLayout oracle)
    {
        Expect.Equal(oracle.EndGsn, history.KnownEndGsn, () => "KnownEndGsn");
        Expect.Equal(oracle.TotalCuts, history.KnownEndCut, () => "KnownEndCut");
        for (var w = 0; w < history.Count; w++)
        {
            var window = w;
            Expect.Equal(oracle.WindowFirstCut(w), history[w].FirstCut, () => $"window {window} FirstCut");
            Expect.Equal(oracle.WindowStartGsn(w), history[w].StartGsn, () => $"window {window} StartGsn");
        }

        // Every GSN: exactly one owner, the oracle's, and GsnOfSlot maps it back.
        for (var g = 0L; g < oracle.EndGsn; g++)
        {
            var gsn = g;
            var located = history.Locate(g);
            Expect.Equal(oracle.Owner(g), located, () => $"Locate({gsn})");
            Expect.Equal(gsn, history.GsnOfSlot(located.Shard, located.Slot), () => $"GsnOfSlot(Locate({gsn}))");
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => history.Locate(oracle.EndGsn));

        // Per shard: slots 0..KnownSlots-1 strictly increasing and tiling [0, end) together with the other shards.
        var owned = new int[oracle.EndGsn];
        for (var s = 0; s <= oracle.Width + 1; s++)
        {
            var shard = s;
            Expect.Equal(oracle.Slots(s), history.KnownSlots(s), () => $"KnownSlots({shard})");
            var previous = -1L;
            for (var k = 0L; k < history.KnownSlots(s); k++)
            {
                var slot = k;
                var gsn = history.GsnOfSlot(s, k);
                Expect.Equal(oracle.GsnOfSlot(s, k), gsn, () => $"GsnOfSlot({shard}, {slot})");
                Expect.Equal(gsn, history.TryGsnOfSlot(s, k), () => $"TryGsnOfSlot({shard}, {slot})");
                Expect.True(gsn > previous, () => $"shard {shard} slot {slot}: GSN {gsn} not above previous {previous}");
                previous = gsn;
                owned[gsn]++;
            }

            var known = history.KnownSlots(s);
            Expect.Equal(null, history.TryGsnOfSlot(s, known), () => $"TryGsnOfSlot({shard}, KnownSlots)");
            Expect.Equal(null, history.TryGsnOfSlot(s, known + 7), () => $"TryGsnOfSlot({shard}, KnownSlots+7)");
            Assert.Throws<ArgumentOutOfRangeException>(() => history.GsnOfSlot(shard, known));
            Expect.Equal(-1, history.WindowOfSlot(s, known), () => $"WindowOfSlot({shard}, KnownSlots)");

            // CompletedCut against the literal definition, including counts beyond the known slots.
            for (var n = 0L; n <= known + 2; n++)
            {
                var slots = n;
                Expect.Equal(oracle.CompletedCutLiteral(s, n), history.CompletedCut(s, n), () => $"CompletedCut({shard}, {slots})");
                Expect.Equal(oracle.CompletedCutLiteral(s, n), oracle.CompletedCut(s, n), () => $"oracle self-check CompletedCut({shard}, {slots})");
            }

            for (var c = 0L; c <= oracle.TotalCuts + 1; c++)
            {
                var cut = c;
                Expect.Equal(oracle.SlotsBeforeCut(s, c), history.SlotsBeforeCut(s, c), () => $"SlotsBeforeCut({shard}, {cut})");
            }

            for (var g = 0L; g <= oracle.EndGsn + 1; g++)
            {
                var gsn = g;
                Expect.Equal(oracle.SlotsBeforeGsn(s, g), history.SlotsBefore(s, g), () => $"SlotsBefore({shard}, {gsn})");
            }
        }

        for (var g = 0; g < owned.Length; g++)
        {
            var gsn = g;
            Expect.Equal(1, owned[g], () => $"number of (shard, slot) pairs mapped to GSN {gsn}");
        }

        for (var c = 0L; c <= oracle.TotalCuts; c++)
        {
            var cut = c;
            Expect.Equal(oracle.GsnOfCut(c), history.GsnOfCut(c), () => $"GsnOfCut({cut})");
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => history.GsnOfCut(oracle.TotalCuts + 1));
        Expect.Equal(-1, history.WindowOfCut(oracle.TotalCuts), () => "WindowOfCut(KnownEndCut)");
        Expect.Equal(-1, history.WindowOfGsn(oracle.EndGsn), () => "WindowOfGsn(KnownEndGsn)");
    }

    [Fact]
    public void Every_prefix_of_a_random_window_sequence_matches_the_naive_layout()
    {
        Gens.Windows.Sample(windows =>
        {
            var configs = NaiveLayout.Chain(windows);
            var history = new WindowHistory();
            CheckAgainstOracle(history, NaiveLayout.OfConfigs([]));
            for (var i = 0; i < configs.Count; i++)
            {
                history.Add(configs[i]);
                Assert.Same(configs[i], history.Last);
                Assert.Equal(i + 1, history.Count);
                CheckAgainstOracle(history, NaiveLayout.Of(windows.Take(i + 1).Select(w => (w.W, (IReadOnlyList<int>)w.Quotas))));
            }
        }, iter: 400, print: Gens.Print);
    }

    [Fact]
    public void AddRange_skips_known_windows_and_appends_the_rest()
    {
        Gens.Windows.Where(w => w.Count >= 2).Sample(windows =>
        {
            var configs = NaiveLayout.Chain(windows);
            var history = new WindowHistory();
            Assert.Equal(1, history.AddRange(configs.Take(1)));
            Assert.Equal(configs.Count - 1, history.AddRange(configs));
            Assert.Equal(0, history.AddRange(configs));
            Assert.Equal(configs, history.Windows);
        }, iter: 100, print: Gens.Print);
    }

    [Fact]
    public void AddRange_stops_at_a_gap_and_takes_the_rest_once_the_missing_window_arrives()
    {
        Gens.Windows.Where(w => w.Count >= 3).Sample(windows =>
        {
            var configs = NaiveLayout.Chain(windows);
            var history = new WindowHistory();
            history.AddRange(configs.Take(1));
            Assert.Equal(0, history.AddRange(configs.Skip(2))); // window 1 is missing: nothing past it is taken
            Assert.Equal(1, history.Count);
            Assert.Equal(configs.Count - 1, history.AddRange(configs.Skip(1)));
            Assert.Equal(configs, history.Windows);
        }, iter: 100, print: Gens.Print);
    }

    [Fact]
    public void Add_rejects_a_window_that_does_not_continue_the_last()
    {
        var history = new WindowHistory();
        ImmutableArray<int> q = [1, 2];
        Assert.Throws<ArgumentException>(() => history.Add(new WindowConfig(1, 0, 0, 3, q)));
        Assert.Throws<ArgumentException>(() => history.Add(new WindowConfig(0, 1, 0, 3, q)));
        Assert.Throws<ArgumentException>(() => history.Add(new WindowConfig(0, 0, 1, 3, q)));
        Assert.Throws<ArgumentNullException>(() => history.Add(null!));
        Assert.Equal(0, history.Count);

        var first = new WindowConfig(0, 0, 0, 3, q);
        history.Add(first);
        var good = first.Next([4]);
        Assert.Throws<ArgumentException>(() => history.Add(first)); // same window again
        Assert.Throws<ArgumentException>(() => history.Add(new WindowConfig(2, good.StartGsn, good.FirstCut, 3, q))); // window gap
        Assert.Throws<ArgumentException>(() => history.Add(new WindowConfig(1, good.StartGsn + 1, good.FirstCut, 3, q))); // GSN gap
        Assert.Throws<ArgumentException>(() => history.Add(new WindowConfig(1, good.StartGsn - 1, good.FirstCut, 3, q))); // GSN overlap
        Assert.Throws<ArgumentException>(() => history.Add(new WindowConfig(1, good.StartGsn, good.FirstCut + 1, 3, q))); // cut gap
        Assert.Equal(0, history.AddRange([good.Next([1])])); // skips a window: not taken (AddRange stops at a gap)
        Assert.Equal(1, history.Count);
        history.Add(good);
        Assert.Equal(2, history.Count);
    }

    [Fact]
    public void Zero_quota_windows_complete_by_themselves()
    {
        // Shard 1 owns nothing in window 1: having filled window 0 it has completed windows 0 and 1.
        var history = new WindowHistory();
        history.AddRange(NaiveLayout.Chain([(2, [1, 2]), (3, [4, 0]), (2, [1, 1])]));
        Assert.Equal(2 * 2 + 0 + 2 * 1, history.KnownSlots(1));
        Assert.Equal(2 + 3, history.CompletedCut(1, 4)); // window 0 (2 cuts) + window 1 (3 cuts)
        Assert.Equal(2 + 3 + 1, history.CompletedCut(1, 5));
        Assert.Equal(history.KnownEndCut, history.CompletedCut(1, 6));
        Assert.Equal(1, history.CompletedCut(1, 3));
    }
}
