using System.Collections.Immutable;
using CsCheck;

namespace SpecLog.FixAnte.Tests;

/// <summary>
/// The interleaved cut layout: the same cuts and the same slots per shard as Belfast's blocked layout, but each
/// shard's slots spread over the cut in proportion to its quota. Checked against brute force.
/// </summary>
public sealed class InterleavedLayoutTests
{
    private static readonly Gen<int[]> QuotaGen = Gen.Int[1, 5].SelectMany(n => Gen.Int[0, 9].Array[n]).Where(q => q.Sum() > 0);

    [Fact]
    public void Every_position_has_exactly_one_owner_and_gsn_of_locate_slots_before_agree_with_brute_force()
    {
        Gen.Select(QuotaGen, Gen.Int[1, 4], Gen.Long[0, 1000]).Sample(t =>
        {
            var (quotas, w, start) = t;
            var cfg = new WindowConfig(3, start, 30, w, ImmutableArray.Create(quotas), layout: CutLayout.Interleaved);
            var owner = new Dictionary<long, (int Shard, long Slot)>();
            for (var s = 0; s < quotas.Length; s++)
            {
                var last = -1L;
                for (var slot = 0L; slot < cfg.SlotsOf(s); slot++)
                {
                    var gsn = cfg.GsnOf(s, slot);
                    Assert.True(gsn > last, $"shard {s}: slot {slot} at GSN {gsn} after {last}");
                    Assert.True(gsn >= cfg.StartGsn && gsn < cfg.EndGsn);
                    Assert.True(owner.TryAdd(gsn, (s, slot)), $"GSN {gsn} owned twice");
                    Assert.Equal((s, slot), cfg.Locate(gsn));
                    last = gsn;
                }
            }

            Assert.Equal(cfg.EndGsn - cfg.StartGsn, owner.Count); // the window is tiled
            for (var gsn = cfg.StartGsn; gsn <= cfg.EndGsn; gsn++)
            {
                for (var s = 0; s < quotas.Length; s++)
                {
                    var expected = owner.Count(o => o.Value.Shard == s && o.Key < gsn);
                    Assert.Equal(expected, cfg.SlotsBefore(s, gsn));
                }
            }
        }, iter: 300);
    }

    [Fact]
    public void A_shards_slots_are_spread_over_the_cut_in_proportion_to_its_quota()
    {
        var cfg = new WindowConfig(0, 0, 0, 2, ImmutableArray.Create(5, 5, 5, 5), layout: CutLayout.Interleaved);
        Assert.Equal(CutLayout.Interleaved, cfg.Layout);
        // Equal quotas: round robin, shard by shard.
        Assert.Equal([0, 1, 2, 3, 0, 1, 2, 3], Enumerable.Range(0, 8).Select(g => cfg.Locate(g).Shard));
        // The first record of every shard needs only one slot of each lower shard, not their whole block of five.
        Assert.Equal(3, cfg.GsnOf(3, 0));
        Assert.Equal(23, cfg.GsnOf(3, 5)); // cut 1 starts at 20

        var skewed = new WindowConfig(0, 0, 0, 1, ImmutableArray.Create(6, 2), layout: CutLayout.Interleaved);
        Assert.Equal([0, 0, 1, 0, 0, 0, 1, 0], Enumerable.Range(0, 8).Select(g => skewed.Locate(g).Shard));
    }

    [Fact]
    public void One_shard_or_an_oversized_cut_stays_blocked_but_remembers_the_request()
    {
        var single = new WindowConfig(0, 0, 0, 4, ImmutableArray.Create(0, 7, 0), layout: CutLayout.Interleaved);
        Assert.Equal(CutLayout.Blocked, single.Layout);
        Assert.Equal(CutLayout.Interleaved, single.RequestedLayout);
        Assert.Equal(CutLayout.Interleaved, single.Next(ImmutableArray.Create(2, 2, 2)).Layout);
        var huge = new WindowConfig(0, 0, 0, 4, ImmutableArray.Create(WindowConfig.MaxInterleavedCutSize, 1), layout: CutLayout.Interleaved);
        Assert.Equal(CutLayout.Blocked, huge.Layout);
    }

    [Fact]
    public void The_sequencer_decides_interleaved_windows_by_default_and_blocked_ones_when_asked()
    {
        var d = new SequencerDriver(SequencerDriver.Options(), 3);
        Assert.Equal(CutLayout.Interleaved, Assert.Single(d.InitOutput.NewWindows).Layout);
        var blocked = new SequencerDriver(new FixAnteOptions { CutLayout = CutLayout.Blocked }, 3);
        Assert.Equal(CutLayout.Blocked, Assert.Single(blocked.InitOutput.NewWindows).Layout);
    }
}
