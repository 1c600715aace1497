namespace SpecLog.FixAnte;

/// <summary>
/// The contiguous sequence of decided windows, with the per-shard slot arithmetic built on it:
/// a shard's k-th slot (its k-th durable entry, no-op slots included) has a GSN that any holder of the
/// history can compute locally.
/// </summary>
/// <remarks>
/// A history may be truncated below a window (<see cref="TruncateBelow"/>, once the log is trimmed past it) and may
/// start at a window other than 0 (<see cref="StartAt"/>, from another holder's <see cref="Base"/>): window numbers,
/// GSNs, cuts and slots stay absolute, and only windows at or above <see cref="First"/> can be asked about. Voids are
/// kept whole (they are few, and a rejoin's may reach past any truncation).
/// </remarks>
public sealed partial class WindowHistory
{
    private readonly List<WindowConfig> _windows = [];
    // _slotStart[i][s]: how many slots shard s owns in windows before window First + i. Grows by one row per window.
    private readonly List<long[]> _slotStart = [];
    private readonly Dictionary<int, List<(long From, long To, long Window)>> _voids = [];
    private readonly HashSet<(int Shard, long Window)> _rejoins = [];
    private int _first;
    private long[]? _startRow; // the first window's row while a history started by StartAt has no window yet

    /// <summary>
    /// The latest void of a shard (<see cref="ShardVoid"/>): [From, To) are no-ops, settled with window <c>Window</c>;
    /// null if the shard never failed.
    /// </summary>
    public (long From, long To, long Window)? VoidOf(int shard) => _voids.TryGetValue(shard, out var v) ? v[^1] : null;

    /// <summary>Every void of a shard, oldest first (a failure, then a rejoin's, then another failure …).</summary>
    public IReadOnlyList<(long From, long To, long Window)> VoidsOf(int shard) => _voids.TryGetValue(shard, out var v) ? v : [];

    /// <summary>Whether shard <paramref name="shard"/>'s slot <paramref name="slot"/> is a no-op because the shard failed.</summary>
    public bool IsVoid(int shard, long slot)
    {
        if (_voids.Count == 0 || !_voids.TryGetValue(shard, out var list))
        {
            return false;
        }

        foreach (var (from, to, _) in list)
        {
            if (slot >= from && slot < to)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The latest failure void of a shard (not a rejoin's), or null if it never failed.</summary>
    public (long From, long To, long Window)? FailureVoidOf(int shard)
    {
        var list = VoidsOf(shard);
        for (var i = list.Count - 1; i >= 0; i--)
        {
            var v = list[i];
            if (!_rejoins.Contains((shard, v.Window)))
            {
                return v;
            }
        }

        return null;
    }

    /// <summary>Whether the latest void of <paramref name="shard"/> is a rejoin's (so it is a member again, or left since).</summary>
    public bool LatestVoidIsRejoin(int shard) => VoidOf(shard) is { } v && _rejoins.Contains((shard, v.Window));

    /// <summary>The first slot at or after <paramref name="slot"/> of shard <paramref name="shard"/> that is not void.</summary>
    public long SkipVoid(int shard, long slot) =>
        _voids.Count == 0 || !_voids.TryGetValue(shard, out var list) ? slot : SkipVoid(list, slot);

    /// <summary>The first slot at or after <paramref name="slot"/> in none of <paramref name="voids"/> (one shard's, as <see cref="VoidsOf"/> gives them).</summary>
    public static long SkipVoid(IReadOnlyList<(long From, long To, long Window)> voids, long slot)
    {
        ArgumentNullException.ThrowIfNull(voids);
        for (var moved = voids.Count > 0; moved;)
        {
            moved = false;
            foreach (var (from, to, _) in voids)
            {
                if (slot >= from && slot < to)
                {
                    slot = to;
                    moved = true;
                }
            }
        }

        return slot;
    }

    /// <summary>The retained windows (numbered <see cref="First"/> and up), oldest first.</summary>
    public IReadOnlyList<WindowConfig> Windows => _windows;

    /// <summary>Number of decided windows: one past the newest window's number (windows below <see cref="First"/> are truncated).</summary>
    public int Count => _first + _windows.Count;

    /// <summary>The number of the oldest retained window (0 unless truncated or started at a base).</summary>
    public int First => _first;

    /// <summary>The newest decided window, or null if none.</summary>
    public WindowConfig? Last => _windows.Count == 0 ? null : _windows[^1];

    /// <summary>One past the last cut whose position is known.</summary>
    public long KnownEndCut => Last?.EndCut ?? _startCut;

    /// <summary>One past the last GSN whose owner is known.</summary>
    public long KnownEndGsn => Last?.EndGsn ?? _startGsn;

    /// <summary>Appends the next window; it must continue the last one exactly (window, GSN and cut numbering).</summary>
    public void Add(WindowConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var last = Last;
        if (last is null && _startRow is not null)
        {
            if (config.Window != _first || config.StartGsn != _startGsn || config.FirstCut != _startCut)
            {
                throw new ArgumentException($"This history starts at window {_first}; got {config}.", nameof(config));
            }
        }
        else if (last is null)
        {
            if (config.Window != 0 || config.StartGsn != 0 || config.FirstCut != 0)
            {
                throw new ArgumentException($"The first window must start at window 0, GSN 0, cut 0; got {config}.", nameof(config));
            }
        }
        else if (config.Window != last.Window + 1 || config.StartGsn != last.EndGsn || config.FirstCut != last.EndCut)
        {
            throw new ArgumentException($"{config} does not continue {last}.", nameof(config));
        }

        var width = Math.Max(config.ShardCount, _slotStart.Count == 0 ? _startRow?.Length ?? 0 : _slotStart[^1].Length);
        var row = new long[width];
        if (last is null && _startRow is not null)
        {
            _startRow.CopyTo(row, 0);
            _startRow = null;
        }
        else if (last is not null)
        {
            var prev = _slotStart[^1];
            for (var s = 0; s < width; s++)
            {
                row[s] = (s < prev.Length ? prev[s] : 0) + last.SlotsOf(s);
            }
        }

        _windows.Add(config);
        _slotStart.Add(row);
        foreach (var v in config.Voids)
        {
            if (!_voids.TryGetValue(v.Shard, out var list))
            {
                _voids[v.Shard] = list = [];
            }

            list.Add((v.FromSlot, v.IsRejoin ? v.ToSlot : Math.Max(v.FromSlot, row[v.Shard]), config.Window));
            if (v.IsRejoin)
            {
                _rejoins.Add((v.Shard, config.Window));
            }
        }
    }

    /// <summary>
    /// Adds the windows of <paramref name="configs"/> this history does not have yet, in order; returns how many were
    /// added. Windows past a gap (the next one it needs is missing) are left out: a shard replica that took over with
    /// fewer windows than its predecessor may be sent windows from where the predecessor stood, and must ask again for
    /// the ones between rather than fail.
    /// </summary>
    public int AddRange(IEnumerable<WindowConfig> configs)
    {
        var added = 0;
        foreach (var c in configs)
        {
            if (c.Window < Count)
            {
                continue;
            }

            if (c.Window > Count)
            {
                break;
            }

            Add(c);
            added++;
        }

        return added;
    }

    /// <summary>The window numbered <paramref name="window"/> (at or above <see cref="First"/>).</summary>
    public WindowConfig this[long window] => _windows[Index(window)];

    /// <summary>Slots shard <paramref name="shard"/> owns in windows before <paramref name="window"/> (window from <see cref="First"/> to <see cref="Count"/>).</summary>
    public long SlotStart(long window, int shard)
    {
        if (window == Count)
        {
            if (_windows.Count == 0)
            {
                return _startRow is { } start && shard < start.Length ? start[shard] : 0;
            }

            return SlotStart(window - 1, shard) + _windows[^1].SlotsOf(shard);
        }

        var row = _slotStart[Index(window)];
        return shard < row.Length ? row[shard] : 0;
    }

    /// <summary>Total slots of a shard in all known windows: slots at or beyond it have no GSN yet.</summary>
    public long KnownSlots(int shard) => SlotStart(Count, shard);

    /// <summary>The GSN of shard <paramref name="shard"/>'s slot <paramref name="slot"/>, or null if no known window holds it yet.</summary>
    public long? TryGsnOfSlot(int shard, long slot)
    {
        var w = WindowOfSlot(shard, slot);
        if (w < 0)
        {
            return null;
        }

        return this[w].GsnOf(shard, slot - SlotStart(w, shard));
    }

    /// <summary>The GSN of shard <paramref name="shard"/>'s slot <paramref name="slot"/>; throws if no known window holds it.</summary>
    public long GsnOfSlot(int shard, long slot) =>
        TryGsnOfSlot(shard, slot) ?? throw new ArgumentOutOfRangeException(nameof(slot), slot, $"Shard {shard} slot {slot} lies beyond the known windows.");

    /// <summary>Which shard owns <paramref name="gsn"/> and which of that shard's slots it is.</summary>
    public (int Shard, long Slot) Locate(long gsn)
    {
        var w = WindowOfGsn(gsn);
        if (w < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(gsn), gsn, gsn < FirstGsn
                ? $"GSN {gsn} lies below the retained windows (the first starts at GSN {FirstGsn}): the log was trimmed past it."
                : $"GSN {gsn} lies beyond the known windows (end {KnownEndGsn}).");
        }

        var (shard, slotInWindow) = this[w].Locate(gsn);
        return (shard, SlotStart(w, shard) + slotInWindow);
    }

    /// <summary>How many of a shard's slots have a GSN below <paramref name="gsn"/> (for gsn up to <see cref="KnownEndGsn"/>).</summary>
    public long SlotsBefore(int shard, long gsn)
    {
        if (gsn >= KnownEndGsn)
        {
            return KnownSlots(shard);
        }

        if (gsn < FirstGsn)
        {
            throw new ArgumentOutOfRangeException(nameof(gsn), gsn, $"GSN {gsn} lies below the retained windows (the first starts at GSN {FirstGsn}).");
        }

        var w = WindowOfGsn(Math.Max(gsn, 0));
        return SlotStart(w, shard) + this[w].SlotsBefore(shard, gsn);
    }

    /// <summary>
    /// The number of cuts a shard has completed once it holds <paramref name="slots"/> durable slots: cut c is complete
    /// when all of the shard's slots in cuts up to c are filled (windows where the shard has quota 0 complete by themselves).
    /// Never beyond <see cref="KnownEndCut"/>.
    /// </summary>
    public long CompletedCut(int shard, long slots)
    {
        if (slots < SlotStart(_first, shard))
        {
            return FirstCut; // below a truncated history: it completed no retained cut
        }

        var w = WindowOfSlot(shard, slots);
        if (w < 0)
        {
            return KnownEndCut;
        }

        var cfg = this[w];
        return cfg.FirstCut + (slots - SlotStart(w, shard)) / cfg.QuotaOf(shard);
    }

    /// <summary>
    /// How far a shard leads by its own slots: <see cref="CompletedCut"/>, except that windows where the shard has quota
    /// 0 (a grounded straggler) which it completes without holding anything in them do not count. A shard that filled
    /// every slot it has before such windows leads to their start, not to the end of the known windows, so it never
    /// makes the others look far behind (lag-fixes, grounding strikes).
    /// </summary>
    public long LeadCut(int shard, long slots)
    {
        var completed = CompletedCut(shard, slots);
        var w = completed <= FirstCut ? -1 : WindowOfCut(completed - 1);
        while (w >= _first && this[w].QuotaOf(shard) == 0)
        {
            w--;
        }

        return w < _first ? Math.Min(completed, FirstCut) : Math.Min(completed, this[w].EndCut);
    }

    /// <summary>How many slots shard <paramref name="shard"/> owns in cuts below <paramref name="cut"/> (cut up to <see cref="KnownEndCut"/>).</summary>
    public long SlotsBeforeCut(int shard, long cut)
    {
        if (cut >= KnownEndCut)
        {
            return KnownSlots(shard);
        }

        if (cut < FirstCut)
        {
            throw new ArgumentOutOfRangeException(nameof(cut), cut, $"Cut {cut} lies below the retained windows (the first starts at cut {FirstCut}).");
        }

        var w = WindowOfCut(cut);
        return SlotStart(w, shard) + (cut - this[w].FirstCut) * this[w].QuotaOf(shard);
    }

    /// <summary>The first GSN of cut <paramref name="cut"/> (cut up to <see cref="KnownEndCut"/>): the confirmed prefix once cuts below it commit.</summary>
    public long GsnOfCut(long cut)
    {
        if (cut >= KnownEndCut)
        {
            if (cut > KnownEndCut)
            {
                throw new ArgumentOutOfRangeException(nameof(cut), cut, $"Cut {cut} lies beyond the known windows (end {KnownEndCut}).");
            }

            return KnownEndGsn;
        }

        var w = WindowOfCut(cut);
        if (w < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(cut), cut, $"Cut {cut} lies below the retained windows (the first starts at cut {FirstCut}).");
        }

        return this[w].GsnOfCut(cut);
    }

    /// <summary>The number of the window holding cut <paramref name="cut"/>, or -1 (beyond the known windows, or truncated).</summary>
    public int WindowOfCut(long cut) => Search(cut, static c => c.FirstCut, static c => c.EndCut);

    /// <summary>The number of the window holding <paramref name="gsn"/>, or -1 (beyond the known windows, or truncated).</summary>
    public int WindowOfGsn(long gsn) => Search(gsn, static c => c.StartGsn, static c => c.EndGsn);

    /// <summary>The number of the window holding shard <paramref name="shard"/>'s slot <paramref name="slot"/>, or -1 if beyond the known windows (or truncated).</summary>
    public int WindowOfSlot(int shard, long slot)
    {
        if (slot < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(slot), slot, "Slots are numbered from 0.");
        }

        // Largest w with SlotStart(w) <= slot; then slot < SlotStart(w+1), so the shard's quota in w is positive.
        int lo = _first, hi = Count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (SlotStart(mid, shard) <= slot)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        if (found < 0 || slot >= SlotStart(found, shard) + this[found].SlotsOf(shard))
        {
            return -1;
        }

        return found;
    }

    private int Search(long value, Func<WindowConfig, long> start, Func<WindowConfig, long> end)
    {
        int lo = 0, hi = _windows.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var c = _windows[mid];
            if (value < start(c))
            {
                hi = mid - 1;
            }
            else if (value >= end(c))
            {
                lo = mid + 1;
            }
            else
            {
                return _first + mid;
            }
        }

        return -1;
    }

    private int Index(long window)
    {
        var i = window - _first;
        if (i < 0 || i >= _windows.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(window), window, window < _first
                ? $"Window {window} was truncated: this history keeps windows {_first} to {Count - 1} (the log was trimmed past it)."
                : $"Window {window} is not decided yet (this history ends before window {Count}).");
        }

        return (int)i;
    }
}
