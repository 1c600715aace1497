using System.Collections.Immutable;

namespace SpecLog.FixAnte;

/// <summary>
/// The predetermined cuts of one speculation-lease window: <see cref="CutsPerWindow"/> cuts, each made of
/// <c>Quotas[s]</c> consecutive slots of every shard <c>s</c>, shards ordered by id inside a cut.
/// This is the one place where the Fix-Ante formula lives.
/// </summary>
/// <remarks>
/// <c>cutSize = Σ q[s]</c>; shard <c>s</c>'s slots of cut <c>c</c> start at
/// <c>StartGsn + (c − FirstCut)·cutSize + Σ_{j&lt;s} q[j]</c>; the next window starts at
/// <c>StartGsn + CutsPerWindow·cutSize</c>. A shard with quota 0 has no slot in the window.
/// </remarks>
public sealed class WindowConfig
{
    private readonly long[] _prefix;

    /// <summary>Creates a window configuration; quotas are per shard id (index) and their sum must be positive.</summary>
    public WindowConfig(long window, long startGsn, long firstCut, int cutsPerWindow, ImmutableArray<int> quotas, long viewId = 0, int cutIntervalFactor = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cutIntervalFactor, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(window);
        ArgumentOutOfRangeException.ThrowIfNegative(startGsn);
        ArgumentOutOfRangeException.ThrowIfNegative(firstCut);
        ArgumentOutOfRangeException.ThrowIfLessThan(cutsPerWindow, 1);
        if (quotas.IsDefaultOrEmpty)
        {
            throw new ArgumentException("A window needs at least one shard quota.", nameof(quotas));
        }

        _prefix = new long[quotas.Length + 1];
        for (var s = 0; s < quotas.Length; s++)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(quotas[s]);
            _prefix[s + 1] = _prefix[s] + quotas[s];
        }

        if (_prefix[^1] == 0)
        {
            throw new ArgumentException("At least one shard must have a non-zero quota.", nameof(quotas));
        }

        Window = window;
        StartGsn = startGsn;
        FirstCut = firstCut;
        CutsPerWindow = cutsPerWindow;
        Quotas = quotas;
        ViewId = viewId;
        CutIntervalFactor = cutIntervalFactor;
    }

    /// <summary>The window number (0, 1, 2, …).</summary>
    public long Window { get; }

    /// <summary>The first global sequence number of the window.</summary>
    public long StartGsn { get; }

    /// <summary>The global index of the window's first cut.</summary>
    public long FirstCut { get; }

    /// <summary>W: the number of cuts in the window.</summary>
    public int CutsPerWindow { get; }

    /// <summary>Records each shard contributes to every cut of the window, indexed by shard id.</summary>
    public ImmutableArray<int> Quotas { get; }

    /// <summary>The ordering-layer view that decided this window (informational).</summary>
    public long ViewId { get; }

    /// <summary>
    /// The window's cut interval in multiples of T_ord: shards fill one cut per cut-clock tick of this many T_ord. The
    /// sequencer raises it at low rates so that quotas of one record per cut are mostly real records, not no-ops.
    /// </summary>
    public int CutIntervalFactor { get; }

    /// <summary>Number of shards the configuration names (shards beyond it have quota 0).</summary>
    public int ShardCount => Quotas.Length;

    /// <summary>Slots in one cut: the sum of all quotas.</summary>
    public long CutSize => _prefix[^1];

    /// <summary>One past the last GSN of the window, which is the next window's start.</summary>
    public long EndGsn => StartGsn + CutsPerWindow * CutSize;

    /// <summary>One past the window's last cut, which is the next window's first cut.</summary>
    public long EndCut => FirstCut + CutsPerWindow;

    /// <summary>The quota of a shard in this window (0 for shards the window does not name).</summary>
    public int QuotaOf(int shard) => (uint)shard < (uint)Quotas.Length ? Quotas[shard] : 0;

    /// <summary>The number of slots a shard owns in the whole window.</summary>
    public long SlotsOf(int shard) => (long)CutsPerWindow * QuotaOf(shard);

    /// <summary>Offset of a shard's first slot inside every cut: the sum of the quotas of lower shard ids.</summary>
    public long PrefixOf(int shard) => _prefix[Math.Min(Math.Max(shard, 0), Quotas.Length)];

    /// <summary>The GSN of a shard's <paramref name="slotInWindow"/>-th slot of this window.</summary>
    public long GsnOf(int shard, long slotInWindow)
    {
        var q = QuotaOf(shard);
        if (slotInWindow < 0 || slotInWindow >= (long)CutsPerWindow * q)
        {
            throw new ArgumentOutOfRangeException(nameof(slotInWindow), slotInWindow, $"Shard {shard} has {(long)CutsPerWindow * q} slots in window {Window}.");
        }

        var cut = slotInWindow / q;
        return StartGsn + cut * CutSize + _prefix[shard] + slotInWindow % q;
    }

    /// <summary>The inverse of <see cref="GsnOf"/>: which shard owns <paramref name="gsn"/> and at which slot of the window.</summary>
    public (int Shard, long SlotInWindow) Locate(long gsn)
    {
        if (gsn < StartGsn || gsn >= EndGsn)
        {
            throw new ArgumentOutOfRangeException(nameof(gsn), gsn, $"Window {Window} covers [{StartGsn}, {EndGsn}).");
        }

        var rel = gsn - StartGsn;
        var cut = rel / CutSize;
        var within = rel % CutSize;
        var shard = Array.BinarySearch(_prefix, within);
        shard = shard >= 0 ? shard : ~shard - 1;
        while (Quotas[shard] == 0)
        {
            shard++; // equal prefixes: the owner is the first shard with a non-zero quota at that offset
        }

        return (shard, cut * Quotas[shard] + within - _prefix[shard]);
    }

    /// <summary>How many of a shard's window slots have a GSN below <paramref name="gsn"/> (gsn inside or at the ends of the window).</summary>
    public long SlotsBefore(int shard, long gsn)
    {
        if (gsn <= StartGsn)
        {
            return 0;
        }

        if (gsn >= EndGsn)
        {
            return SlotsOf(shard);
        }

        var rel = gsn - StartGsn;
        var q = QuotaOf(shard);
        return rel / CutSize * q + Math.Clamp(rel % CutSize - PrefixOf(shard), 0, q);
    }

    /// <summary>The first GSN of cut <paramref name="cut"/> (which may be <see cref="EndCut"/>).</summary>
    public long GsnOfCut(long cut)
    {
        if (cut < FirstCut || cut > EndCut)
        {
            throw new ArgumentOutOfRangeException(nameof(cut), cut, $"Window {Window} holds cuts [{FirstCut}, {EndCut}).");
        }

        return StartGsn + (cut - FirstCut) * CutSize;
    }

    /// <summary>The configuration of the window that follows this one, with the given quotas and W.</summary>
    public WindowConfig Next(ImmutableArray<int> quotas, int? cutsPerWindow = null, long? viewId = null, int? cutIntervalFactor = null) =>
        new(Window + 1, EndGsn, EndCut, cutsPerWindow ?? CutsPerWindow, quotas, viewId ?? ViewId, cutIntervalFactor ?? CutIntervalFactor);

    /// <inheritdoc />
    public override string ToString() =>
        $"window {Window} [gsn {StartGsn}..{EndGsn}, cuts {FirstCut}..{EndCut}) quotas [{string.Join(',', Quotas)}]" + (CutIntervalFactor == 1 ? "" : $" cut interval ×{CutIntervalFactor}");
}
