using System.Collections.Immutable;

namespace SpecLog.FixAnte.Tests;

/// <summary>
/// The independent oracle: lays a sequence of windows out literally, cut by cut, shard by shard, slot by slot, into
/// plain lists. It never uses the arithmetic of the code under test (only the windows' W and quotas as input).
/// </summary>
internal sealed class NaiveLayout
{
    private readonly List<(int Shard, long Slot)> _owners = [];
    private readonly List<long> _cutStartGsn = [];
    private readonly List<List<long>> _slotGsn = [];
    private readonly List<List<long>> _slotCut = [];
    private readonly List<long> _windowFirstCut = [];
    private readonly List<long> _windowStartGsn = [];

    private NaiveLayout()
    {
    }

    /// <summary>Number of GSNs laid out.</summary>
    public long EndGsn => _owners.Count;

    /// <summary>Number of cuts laid out.</summary>
    public long TotalCuts => _cutStartGsn.Count;

    /// <summary>Highest shard id named by any window, plus one.</summary>
    public int Width => _slotGsn.Count;

    public long WindowFirstCut(int window) => _windowFirstCut[window];

    public long WindowStartGsn(int window) => _windowStartGsn[window];

    public static NaiveLayout OfConfigs(IEnumerable<WindowConfig> configs) =>
        Of(configs.Select(c => (c.CutsPerWindow, (IReadOnlyList<int>)c.Quotas)));

    public static NaiveLayout Of(IEnumerable<(int W, IReadOnlyList<int> Quotas)> windows)
    {
        var layout = new NaiveLayout();
        foreach (var (w, quotas) in windows)
        {
            layout._windowFirstCut.Add(layout._cutStartGsn.Count);
            layout._windowStartGsn.Add(layout._owners.Count);
            while (layout._slotGsn.Count < quotas.Count)
            {
                layout._slotGsn.Add([]);
                layout._slotCut.Add([]);
            }

            for (var c = 0; c < w; c++)
            {
                var cut = layout._cutStartGsn.Count;
                layout._cutStartGsn.Add(layout._owners.Count);
                for (var s = 0; s < quotas.Count; s++)
                {
                    for (var k = 0; k < quotas[s]; k++)
                    {
                        var slot = layout._slotGsn[s].Count;
                        layout._slotGsn[s].Add(layout._owners.Count);
                        layout._slotCut[s].Add(cut);
                        layout._owners.Add((s, slot));
                    }
                }
            }
        }

        return layout;
    }

    /// <summary>Builds the WindowConfig chain for the given (W, quotas) list using only the public constructor and Next.</summary>
    public static List<WindowConfig> Chain(IEnumerable<(int W, int[] Quotas)> windows)
    {
        var result = new List<WindowConfig>();
        foreach (var (w, quotas) in windows)
        {
            var q = ImmutableArray.Create(quotas);
            result.Add(result.Count == 0 ? new WindowConfig(0, 0, 0, w, q) : result[^1].Next(q, w));
        }

        return result;
    }

    public (int Shard, long Slot) Owner(long gsn) => _owners[checked((int)gsn)];

    public long Slots(int shard) => shard < _slotGsn.Count ? _slotGsn[shard].Count : 0;

    public long GsnOfSlot(int shard, long slot) => _slotGsn[shard][checked((int)slot)];

    public long CutOfSlot(int shard, long slot) => _slotCut[shard][checked((int)slot)];

    /// <summary>First GSN of a cut; <see cref="TotalCuts"/> maps to <see cref="EndGsn"/>.</summary>
    public long GsnOfCut(long cut) => cut == TotalCuts ? EndGsn : _cutStartGsn[checked((int)cut)];

    /// <summary>Slots of the shard lying in cuts strictly below <paramref name="cut"/> (counted one by one).</summary>
    public long SlotsBeforeCut(int shard, long cut)
    {
        if (shard >= _slotCut.Count)
        {
            return 0;
        }

        var n = 0L;
        foreach (var c in _slotCut[shard])
        {
            if (c < cut)
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>Slots of the shard whose GSN is below <paramref name="gsn"/> (counted one by one).</summary>
    public long SlotsBeforeGsn(int shard, long gsn)
    {
        if (shard >= _slotGsn.Count)
        {
            return 0;
        }

        var n = 0L;
        foreach (var g in _slotGsn[shard])
        {
            if (g < gsn)
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>
    /// Literal definition: the largest c in [0, TotalCuts] such that every slot of the shard in cuts below c is below
    /// <paramref name="slots"/>. Quadratic; for small layouts.
    /// </summary>
    public long CompletedCutLiteral(int shard, long slots)
    {
        var best = 0L;
        for (var c = 0L; c <= TotalCuts; c++)
        {
            if (SlotsBeforeCut(shard, c) <= slots)
            {
                best = c;
            }
        }

        return best;
    }

    /// <summary>Fast equivalent of <see cref="CompletedCutLiteral"/>: the cut of the first missing slot (checked against it in tests).</summary>
    public long CompletedCut(int shard, long slots) =>
        slots >= Slots(shard) ? TotalCuts : CutOfSlot(shard, slots);
}
