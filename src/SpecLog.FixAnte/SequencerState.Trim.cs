namespace SpecLog.FixAnte;

/// <summary>Trimming: the window history follows the retained log.</summary>
public sealed partial class SequencerState
{
    /// <summary>The highest trim point applied (<see cref="ShardControl.Trim"/>): windows wholly below it are gone.</summary>
    public long TrimmedBelowGsn { get; private set; }

    /// <summary>Restores the trim point a restart read back (its windows were dropped already); never lowers it.</summary>
    public void RecoverTrimPoint(long gsn) => TrimmedBelowGsn = Math.Max(TrimmedBelowGsn, gsn);

    /// <summary>
    /// Drops the windows that lie wholly below <paramref name="gsn"/> (clamped to the committed GSNs; the newest window
    /// always stays). Deterministic: every replica that applies the same trim at the same point drops the same windows.
    /// Returns how many went.
    /// </summary>
    public int TrimBelow(long gsn)
    {
        gsn = Math.Min(gsn, CommittedGsn);
        if (gsn <= TrimmedBelowGsn || History.Count == 0)
        {
            return 0;
        }

        TrimmedBelowGsn = gsn;
        var window = gsn >= History.KnownEndGsn ? History.Count - 1 : History.WindowOfGsn(gsn);
        return window < 0 ? 0 : History.TruncateBelow(window);
    }
}
