using System.Collections.Immutable;

namespace SpecLog.FixAnte;

/// <summary>How a cut's slots are ordered among the shards (the cut itself, its slots per shard, is the same).</summary>
public enum CutLayout
{
    /// <summary>Belfast: each shard's <c>q[s]</c> slots of a cut are consecutive, shards ordered by id.</summary>
    Blocked = 0,

    /// <summary>
    /// The shards' slots are spread over the cut in proportion to their quotas (shard s's k-th slot of a cut sits at
    /// the fraction (2k+1)/(2q[s]) of the cut, ties by shard id), so a record waits in GSN order only for the slots the
    /// other shards fill at about the same pace, not for whole blocks of theirs.
    /// </summary>
    Interleaved = 1,
}

/// <summary>
/// Slots of a shard that are no-ops whatever the shard holds there. Two kinds:
/// <list type="bullet">
/// <item>A whole-shard failure settled in a window (<see cref="IsRejoin"/> false): shard <paramref name="Shard"/> lost
/// every replica, and its slots from <paramref name="FromSlot"/> (the durable slots the sequencer had heard of) up to
/// the window that names it are no-ops. Records the shard had delivered speculatively there are not in the log (they
/// are mis-speculated).</item>
/// <item>A failed shard rejoining with the window that names it (<see cref="IsRejoin"/>): its slots from
/// <paramref name="FromSlot"/> (its first slot of this window) to <paramref name="ToSlot"/> are no-ops, so the records
/// it had taken beyond its last slot before it failed (whose appends failed) never get a position; it continues at
/// <paramref name="ToSlot"/>.</item>
/// </list>
/// </summary>
/// <param name="Shard">The failed shard (departed from the window that carries a failure; a member again from one that carries a rejoin).</param>
/// <param name="FromSlot">Its first slot that is void.</param>
/// <param name="ToSlot">For a rejoin, one past its last void slot; -1 for a failure (the void ends where the window starts).</param>
public readonly record struct ShardVoid(int Shard, long FromSlot, long ToSlot = -1)
{
    /// <summary>True for the void of a rejoining shard (explicit end), false for a failure.</summary>
    public bool IsRejoin => ToSlot >= 0;
}

/// <summary>
/// The predetermined cuts of one speculation-lease window: <see cref="CutsPerWindow"/> cuts, each made of
/// <c>Quotas[s]</c> slots of every shard <c>s</c>, in the window's <see cref="Layout"/> inside a cut.
/// This is the one place where the Fix-Ante formula lives.
/// </summary>
/// <remarks>
/// <c>cutSize = Σ q[s]</c>; the next window starts at <c>StartGsn + CutsPerWindow·cutSize</c>; shard <c>s</c>'s k-th
/// slot of cut <c>c</c> is at <c>StartGsn + (c − FirstCut)·cutSize + offset(s, k)</c>, where offset is
/// <c>Σ_{j&lt;s} q[j] + k</c> (blocked) or the rank of (s, k) when the cut's slots are ordered by (2k+1)/(2q[s]) and
/// shard id (interleaved). A shard with quota 0 has no slot in the window.
/// </remarks>
public sealed class WindowConfig
{
    /// <summary>Largest cut that is interleaved; bigger cuts stay blocked (the offset tables grow with the cut).</summary>
    public const int MaxInterleavedCutSize = 1 << 16;

    private readonly long[] _prefix;
    private readonly CutLayout _requestedLayout;
    private readonly int[][]? _offsets; // interleaved: per shard, the in-cut offsets of its slots, ascending
    private readonly int[]? _ownerAt;    // interleaved: the shard owning each in-cut offset
    private readonly int[]? _indexAt;    // interleaved: which of its owner's slots each offset is

    /// <summary>
    /// Creates a window configuration; quotas are per shard id (index) and their sum must be positive.
    /// <paramref name="departed"/> lists the shards removed from the log by this window (ascending ids below the quota
    /// count, each with quota 0); they have no slot in it or in any later window.
    /// </summary>
    public WindowConfig(long window, long startGsn, long firstCut, int cutsPerWindow, ImmutableArray<int> quotas, long viewId = 0, int cutIntervalFactor = 1, CutLayout layout = CutLayout.Blocked, ImmutableArray<int> departed = default, ImmutableArray<ShardVoid> voids = default)
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
        if (!Enum.IsDefined(layout))
        {
            throw new ArgumentOutOfRangeException(nameof(layout), layout, "Unknown cut layout.");
        }

        Departed = departed.IsDefault ? [] : departed;
        for (var i = 0; i < Departed.Length; i++)
        {
            var d = Departed[i];
            if (d < 0 || d >= quotas.Length || quotas[d] != 0 || (i > 0 && Departed[i - 1] >= d))
            {
                throw new ArgumentException($"Departed shards must be ascending ids below {quotas.Length} with quota 0; got [{string.Join(',', Departed)}] for quotas [{string.Join(',', quotas)}].", nameof(departed));
            }
        }

        Voids = voids.IsDefault ? [] : voids;
        foreach (var v in Voids)
        {
            if (HasDeparted(v.Shard) == v.IsRejoin || v.FromSlot < 0 || (v.IsRejoin && v.ToSlot < v.FromSlot) || v.Shard >= quotas.Length
                || Voids.Count(x => x.Shard == v.Shard) > 1)
            {
                throw new ArgumentException(
                    $"A void must name a shard once, from a slot ≥ 0: a failed one that departs with this window, or a rejoining one (a member again) with an end at or after its start; got {v} with departed [{string.Join(',', Departed)}].",
                    nameof(voids));
            }
        }

        _requestedLayout = layout;
        if (layout == CutLayout.Interleaved && _prefix[^1] <= MaxInterleavedCutSize && quotas.Count(q => q > 0) > 1)
        {
            Layout = CutLayout.Interleaved;
            (_offsets, _ownerAt, _indexAt) = Interleave(quotas, (int)_prefix[^1]);
        }
    }

    /// <summary>How the cut's slots are ordered among the shards (interleaving is kept only for cuts of at most
    /// <see cref="MaxInterleavedCutSize"/> slots and more than one shard; otherwise blocked).</summary>
    public CutLayout Layout { get; }

    private static (int[][] Offsets, int[] OwnerAt, int[] IndexAt) Interleave(ImmutableArray<int> quotas, int cutSize)
    {
        var slots = new (int Shard, int K)[cutSize];
        var n = 0;
        for (var s = 0; s < quotas.Length; s++)
        {
            for (var k = 0; k < quotas[s]; k++)
            {
                slots[n++] = (s, k);
            }
        }

        // Order by (2k+1)/(2q) exactly (cross-multiplied), ties by shard id: integer arithmetic, the same everywhere.
        Array.Sort(slots, (a, b) =>
        {
            var c = ((2L * a.K + 1) * quotas[b.Shard]).CompareTo((2L * b.K + 1) * quotas[a.Shard]);
            return c != 0 ? c : a.Shard.CompareTo(b.Shard);
        });
        var offsets = new int[quotas.Length][];
        for (var s = 0; s < quotas.Length; s++)
        {
            offsets[s] = new int[quotas[s]];
        }

        var ownerAt = new int[cutSize];
        var indexAt = new int[cutSize];
        for (var o = 0; o < cutSize; o++)
        {
            var (shard, k) = slots[o];
            offsets[shard][k] = o;
            ownerAt[o] = shard;
            indexAt[o] = k;
        }

        return (offsets, ownerAt, indexAt);
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

    /// <summary>
    /// The shards removed from the log as of this window (ascending): they have quota 0 here and in every later window.
    /// Windows carry the whole list, so whoever holds the newest window knows the log's shard set.
    /// </summary>
    public ImmutableArray<int> Departed { get; }

    /// <summary>
    /// Shards that failed and leave the log with this window (each is in <see cref="Departed"/>): their slots from
    /// <see cref="ShardVoid.FromSlot"/> up to this window are no-ops. Only the window where a failure is settled carries it.
    /// </summary>
    public ImmutableArray<ShardVoid> Voids { get; }

    /// <summary>Whether <paramref name="shard"/> has left the log as of this window.</summary>
    public bool HasDeparted(int shard) => Departed.Length > 0 && Departed.BinarySearch(shard) >= 0;

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

    /// <summary>Blocked layout: offset of a shard's first slot inside every cut, the sum of the quotas of lower shard ids.</summary>
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
        var offset = _offsets is null ? _prefix[shard] + slotInWindow % q : _offsets[shard][slotInWindow % q];
        return StartGsn + cut * CutSize + offset;
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
        if (_ownerAt is not null)
        {
            var owner = _ownerAt[within];
            return (owner, cut * Quotas[owner] + _indexAt![within]);
        }

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
        if (_offsets is not null)
        {
            if (q == 0)
            {
                return 0;
            }

            var i = Array.BinarySearch(_offsets[shard], (int)(rel % CutSize));
            return rel / CutSize * q + (i >= 0 ? i : ~i);
        }

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

    /// <summary>The configuration of the window that follows this one, with the given quotas and W (and this one's departed shards unless given).</summary>
    public WindowConfig Next(ImmutableArray<int> quotas, int? cutsPerWindow = null, long? viewId = null, int? cutIntervalFactor = null, CutLayout? layout = null, ImmutableArray<int>? departed = null, ImmutableArray<ShardVoid> voids = default) =>
        new(Window + 1, EndGsn, EndCut, cutsPerWindow ?? CutsPerWindow, quotas, viewId ?? ViewId, cutIntervalFactor ?? CutIntervalFactor, layout ?? RequestedLayout, departed ?? Departed, voids);

    /// <summary>
    /// The layout the window was created with (what is stored and sent); <see cref="Layout"/> is what it uses, blocked
    /// when interleaving would change nothing (one shard) or the cut is too big. <see cref="Next"/> passes it on.
    /// </summary>
    public CutLayout RequestedLayout => _requestedLayout;

    /// <inheritdoc />
    public override string ToString() =>
        $"window {Window} [gsn {StartGsn}..{EndGsn}, cuts {FirstCut}..{EndCut}) quotas [{string.Join(',', Quotas)}]" + (CutIntervalFactor == 1 ? "" : $" cut interval ×{CutIntervalFactor}") + (Layout == CutLayout.Blocked ? "" : " interleaved") + (Departed.Length == 0 ? "" : $" departed [{string.Join(',', Departed)}]")
        + (Voids.Length == 0 ? "" : $" voids [{string.Join(',', Voids.Select(v => v.IsRejoin ? $"{v.Shard} rejoins, slots {v.FromSlot}..{v.ToSlot} void" : $"{v.Shard} failed from slot {v.FromSlot}"))}]");
}
