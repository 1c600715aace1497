using System.Collections.Immutable;
using CsCheck;

namespace SpecLog.FixAnte.Tests;

public sealed class WindowConfigTests
{
    private static readonly Gen<(int W, int[] Quotas, long StartGsn, long FirstCut, long Window)> GenConfig =
        Gen.Select(Gen.Int[1, 12], Gens.Quotas, Gen.Long[0, 1L << 40], Gen.Long[0, 1L << 30], Gen.Long[0, 1000]);

    private static WindowConfig Make((int W, int[] Quotas, long StartGsn, long FirstCut, long Window) t) =>
        new(t.Window, t.StartGsn, t.FirstCut, t.W, ImmutableArray.Create(t.Quotas));

    private static string Print((int W, int[] Quotas, long StartGsn, long FirstCut, long Window) t) =>
        $"W={t.W} q=[{string.Join(',', t.Quotas)}] start={t.StartGsn} firstCut={t.FirstCut} window={t.Window}";

    [Fact]
    public void GsnOf_and_Locate_are_a_bijection_matching_the_naive_layout()
    {
        GenConfig.Sample(t =>
        {
            var cfg = Make(t);
            var oracle = NaiveLayout.Of([(t.W, (IReadOnlyList<int>)t.Quotas)]);
            Expect.Equal(t.StartGsn + oracle.EndGsn, cfg.EndGsn, () => "EndGsn");
            Expect.Equal(t.FirstCut + t.W, cfg.EndCut, () => "EndCut");
            Expect.Equal(t.Quotas.Sum(), cfg.CutSize, () => "CutSize");

            var hit = new int[oracle.EndGsn];
            for (var s = 0; s < t.Quotas.Length; s++)
            {
                Expect.Equal(oracle.Slots(s), cfg.SlotsOf(s), () => $"SlotsOf({s})");
                for (var k = 0L; k < cfg.SlotsOf(s); k++)
                {
                    var gsn = cfg.GsnOf(s, k);
                    Expect.Equal(t.StartGsn + oracle.GsnOfSlot(s, k), gsn, () => $"GsnOf({s}, {k})");
                    Expect.Equal((s, k), cfg.Locate(gsn), () => $"Locate(GsnOf({s}, {k}) = {gsn})");
                    hit[gsn - t.StartGsn]++;
                }
            }

            for (var g = 0; g < hit.Length; g++)
            {
                Expect.Equal(1, hit[g], () => $"times GSN {t.StartGsn + g} is owned");
                var (shard, slot) = cfg.Locate(t.StartGsn + g);
                Expect.Equal(oracle.Owner(g), (shard, slot), () => $"Locate({t.StartGsn + g})");
                Expect.Equal(t.StartGsn + g, cfg.GsnOf(shard, slot), () => $"GsnOf(Locate({t.StartGsn + g}))");
            }
        }, iter: 500, print: Print);
    }

    [Fact]
    public void SlotsBefore_and_GsnOfCut_agree_with_counting()
    {
        GenConfig.Sample(t =>
        {
            var cfg = Make(t);
            var oracle = NaiveLayout.Of([(t.W, (IReadOnlyList<int>)t.Quotas)]);
            for (var s = -1; s <= t.Quotas.Length + 1; s++)
            {
                for (var g = -2L; g <= oracle.EndGsn + 2; g++)
                {
                    var expected = s < 0 ? 0 : oracle.SlotsBeforeGsn(s, Math.Clamp(g, 0, oracle.EndGsn));
                    Expect.Equal(expected, cfg.SlotsBefore(s, t.StartGsn + g), () => $"SlotsBefore({s}, start{g:+0;-0})");
                }

                Expect.Equal(s < 0 ? 0 : t.Quotas.ElementAtOrDefault(s), cfg.QuotaOf(s), () => $"QuotaOf({s})");
            }

            for (var c = 0; c <= t.W; c++)
            {
                Expect.Equal(t.StartGsn + oracle.GsnOfCut(c), cfg.GsnOfCut(t.FirstCut + c), () => $"GsnOfCut(first+{c})");
            }

            Assert.Throws<ArgumentOutOfRangeException>(() => cfg.GsnOfCut(t.FirstCut + t.W + 1));
            if (t.FirstCut > 0)
            {
                Assert.Throws<ArgumentOutOfRangeException>(() => cfg.GsnOfCut(t.FirstCut - 1));
            }
        }, iter: 300, print: Print);
    }

    [Fact]
    public void Out_of_range_slots_and_gsns_throw()
    {
        GenConfig.Sample(t =>
        {
            var cfg = Make(t);
            Assert.Throws<ArgumentOutOfRangeException>(() => cfg.Locate(cfg.StartGsn - 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => cfg.Locate(cfg.EndGsn));
            for (var s = -1; s <= t.Quotas.Length; s++)
            {
                var shard = s;
                Assert.Throws<ArgumentOutOfRangeException>(() => cfg.GsnOf(shard, -1));
                Assert.Throws<ArgumentOutOfRangeException>(() => cfg.GsnOf(shard, cfg.SlotsOf(shard)));
            }
        }, iter: 200, print: Print);
    }

    [Fact]
    public void Next_continues_the_window()
    {
        var first = new WindowConfig(0, 0, 0, 4, [2, 0, 1]);
        var next = first.Next([1, 1, 1, 5], 7, viewId: 3);
        Assert.Equal(1, next.Window);
        Assert.Equal(4 * 3, next.StartGsn);
        Assert.Equal(4, next.FirstCut);
        Assert.Equal(7, next.CutsPerWindow);
        Assert.Equal(3, next.ViewId);
        Assert.Equal(4, next.ShardCount);
        var kept = next.Next([1]);
        Assert.Equal(7, kept.CutsPerWindow);
        Assert.Equal(3, kept.ViewId);
    }

    public static TheoryData<int[]> BadQuotas => new([], [0], [0, 0, 0], [1, -1], [-3]);

    [Theory]
    [MemberData(nameof(BadQuotas))]
    public void Constructor_rejects_bad_quotas(int[] quotas)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => new WindowConfig(0, 0, 0, 10, ImmutableArray.Create(quotas)));
        if (quotas.Any(q => q < 0))
        {
            Assert.IsType<ArgumentOutOfRangeException>(ex);
        }
    }

    [Fact]
    public void Constructor_rejects_default_quotas_and_bad_numbering()
    {
        Assert.ThrowsAny<ArgumentException>(() => new WindowConfig(0, 0, 0, 10, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowConfig(0, 0, 0, 0, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowConfig(0, 0, 0, -5, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowConfig(-1, 0, 0, 1, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowConfig(0, -1, 0, 1, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowConfig(0, 0, -1, 1, [1]));
        Assert.Equal(1, new WindowConfig(0, 0, 0, 1, [0, 1]).CutSize);
    }
}
