using System.Collections.Immutable;

namespace SpecLog.FixAnte;

/// <summary>One void of a shard as a history keeps it: slots [<paramref name="FromSlot"/>, <paramref name="ToSlot"/>) settled by window <paramref name="Window"/>.</summary>
/// <param name="Shard">The shard.</param>
/// <param name="FromSlot">Its first void slot.</param>
/// <param name="ToSlot">One past its last void slot.</param>
/// <param name="Window">The window that carried the void.</param>
/// <param name="IsRejoin">True for a rejoin's void, false for a failure's.</param>
public readonly record struct VoidSpan(int Shard, long FromSlot, long ToSlot, long Window, bool IsRejoin);

/// <summary>
/// Where a truncated window history starts: what a holder that lacks the windows below <paramref name="Window"/> needs
/// to continue the slot arithmetic from there (the windows themselves come with it).
/// </summary>
/// <param name="Window">The first retained window's number.</param>
/// <param name="StartGsn">Its first GSN.</param>
/// <param name="FirstCut">Its first cut.</param>
/// <param name="SlotStart">Per shard, the slots owned in the windows before it.</param>
/// <param name="Voids">Every void of every shard carried by a window below <paramref name="Window"/>, oldest first per shard (the retained windows carry theirs).</param>
public sealed record WindowBase(long Window, long StartGsn, long FirstCut, ImmutableArray<long> SlotStart, ImmutableArray<VoidSpan> Voids);

/// <summary>Truncation and starting from a base: what keeps a history bounded by the retained log.</summary>
public sealed partial class WindowHistory
{
    private long _startGsn;
    private long _startCut;

    /// <summary>The first GSN of the oldest retained window (0 unless truncated).</summary>
    public long FirstGsn => _windows.Count > 0 ? _windows[0].StartGsn : _startGsn;

    /// <summary>The first cut of the oldest retained window (0 unless truncated).</summary>
    public long FirstCut => _windows.Count > 0 ? _windows[0].FirstCut : _startCut;

    /// <summary>Windows numbered <paramref name="fromWindow"/> and up that this history holds (from <see cref="First"/> when truncated below).</summary>
    public WindowConfig[] WindowsFrom(long fromWindow)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromWindow);
        var from = Math.Max(fromWindow, _first) - _first;
        return from >= _windows.Count ? [] : _windows.GetRange((int)from, _windows.Count - (int)from).ToArray();
    }

    /// <summary>
    /// Drops the windows below <paramref name="window"/> (never the newest: the next window continues it); returns how
    /// many went. Only for windows every holder's GSNs have left behind: the log was trimmed past them.
    /// </summary>
    public int TruncateBelow(long window)
    {
        var drop = (int)Math.Min(window - _first, _windows.Count - 1L);
        if (drop <= 0)
        {
            return 0;
        }

        _windows.RemoveRange(0, drop);
        _slotStart.RemoveRange(0, drop);
        _first += drop;
        return drop;
    }

    /// <summary>What a holder needs to start a history at <see cref="First"/> (see <see cref="StartAt"/>).</summary>
    public WindowBase Base()
    {
        var width = _slotStart.Count > 0 ? _slotStart[0].Length : _startRow?.Length ?? 0;
        var row = new long[width];
        for (var s = 0; s < width; s++)
        {
            row[s] = SlotStart(_first, s);
        }

        var voids = ImmutableArray.CreateBuilder<VoidSpan>();
        foreach (var (shard, list) in _voids.OrderBy(v => v.Key))
        {
            foreach (var (from, to, window) in list.Where(v => v.Window < _first))
            {
                voids.Add(new VoidSpan(shard, from, to, window, _rejoins.Contains((shard, window))));
            }
        }

        return new WindowBase(_first, FirstGsn, FirstCut, [.. row], voids.ToImmutable());
    }

    /// <summary>
    /// Makes this history continue from <paramref name="start"/> when it lacks windows below it: a holder that was away
    /// while the log was trimmed past everything it knew drops what it had and takes the base (its windows follow by
    /// <see cref="Add"/> or <see cref="AddRange"/>). A history that already reaches the base is truncated to it instead.
    /// Returns whether the history was restarted.
    /// </summary>
    public bool StartAt(WindowBase start)
    {
        ArgumentNullException.ThrowIfNull(start);
        var reaches = _windows.Count > 0 ? start.Window <= Count : start.Window == (_startRow is null ? 0 : _first);
        if (reaches)
        {
            TruncateBelow(start.Window);
            return false;
        }

        _windows.Clear();
        _slotStart.Clear();
        _voids.Clear();
        _rejoins.Clear();
        _first = checked((int)start.Window);
        _startRow = [.. start.SlotStart];
        _startGsn = start.StartGsn;
        _startCut = start.FirstCut;
        foreach (var v in start.Voids)
        {
            if (!_voids.TryGetValue(v.Shard, out var list))
            {
                _voids[v.Shard] = list = [];
            }

            list.Add((v.FromSlot, v.ToSlot, v.Window));
            if (v.IsRejoin)
            {
                _rejoins.Add((v.Shard, v.Window));
            }
        }

        return true;
    }
}
