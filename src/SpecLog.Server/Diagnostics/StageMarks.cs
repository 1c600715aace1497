namespace SpecLog.Server.Diagnostics;

/// <summary>
/// When a shard's slot count passed each value (durability events, reports sent), so that an append's stage
/// timestamps can be found when it is acknowledged: the first mark covering its last slot. Kept only while someone
/// listens to the stage histogram, trimmed as appends are acknowledged, and bounded.
/// </summary>
internal sealed class StageMarks
{
    private const int MaxMarks = 8192;
    private readonly Queue<(long Slots, long Micros)> _marks = new();

    /// <summary>Notes that the count reached <paramref name="slots"/> at <paramref name="micros"/> (µs).</summary>
    public void Add(long slots, long micros)
    {
        if (!SpecLogMetrics.StageDuration.Enabled)
        {
            return;
        }

        if (_marks.Count == MaxMarks)
        {
            _marks.Dequeue();
        }

        _marks.Enqueue((slots, micros));
    }

    /// <summary>The time of the first mark whose count is at least <paramref name="slots"/>, or 0 if none.</summary>
    public long FirstCovering(long slots)
    {
        foreach (var (s, micros) in _marks)
        {
            if (s >= slots)
            {
                return micros;
            }
        }

        return 0;
    }

    /// <summary>Drops marks below <paramref name="slots"/>: nothing that is still waiting ends before it.</summary>
    public void TrimBelow(long slots)
    {
        while (_marks.TryPeek(out var head) && head.Slots < slots)
        {
            _marks.Dequeue();
        }
    }
}
