namespace SpecLog.FixAnte;

/// <summary>
/// Everything a <see cref="SequencerState"/> holds, as plain data: what a replica persists so that a restart resumes
/// from it instead of replaying every report since the log began. The per-shard arrays are listed once, in
/// <c>SequencerState.LongsOf</c> / <c>IntsOf</c> / <c>FlagsOf</c>, so a field added there is snapshotted too.
/// </summary>
public sealed class SequencerSnapshot
{
    /// <summary>Where the window history starts.</summary>
    public required WindowBase Base { get; init; }

    /// <summary>The retained windows, oldest first.</summary>
    public required WindowConfig[] Windows { get; init; }

    /// <summary>The per-shard long arrays, in the state's fixed order.</summary>
    public required long[][] Longs { get; init; }

    /// <summary>The per-shard int arrays, in the state's fixed order.</summary>
    public required int[][] Ints { get; init; }

    /// <summary>The per-shard flags, in the state's fixed order.</summary>
    public required bool[][] Flags { get; init; }

    /// <summary>Per shard, the rate marks (time in µs, records), oldest first.</summary>
    public required (long Micros, long Records)[][] RateMarks { get; init; }

    /// <summary>Per shard, the latest (time, records) heard.</summary>
    public required (long Micros, long Records)[] Latest { get; init; }

    /// <summary>The scalar counters, in the state's fixed order.</summary>
    public required long[] Scalars { get; init; }
}

/// <summary>Snapshots: exporting the whole state and resuming from it.</summary>
public sealed partial class SequencerState
{
    private const int LongArrays = 7;
    private const int IntArrays = 3;
    private const int FlagArrays = 8;
    private const int ScalarCount = 12;

    /// <summary>A copy of everything this state holds (see <see cref="Restore"/>).</summary>
    public SequencerSnapshot Snapshot()
    {
        var longs = new long[LongArrays][];
        for (var i = 0; i < LongArrays; i++)
        {
            longs[i] = (long[])LongsOf(i).Clone();
        }

        var ints = new int[IntArrays][];
        for (var i = 0; i < IntArrays; i++)
        {
            ints[i] = (int[])IntsOf(i).Clone();
        }

        var flags = new bool[FlagArrays][];
        for (var i = 0; i < FlagArrays; i++)
        {
            flags[i] = (bool[])FlagsOf(i).Clone();
        }

        var scalars = new long[ScalarCount];
        for (var i = 0; i < ScalarCount; i++)
        {
            scalars[i] = ScalarOf(i);
        }

        return new SequencerSnapshot
        {
            Base = History.Base(),
            Windows = [.. History.Windows],
            Longs = longs,
            Ints = ints,
            Flags = flags,
            RateMarks = [.. _rateMarks.Select(q => q.ToArray())],
            Latest = ((long Micros, long Records)[])_latest.Clone(),
            Scalars = scalars,
        };
    }

    /// <summary>
    /// The state <paramref name="snapshot"/> was taken from: applying the same reports to it from then on gives the
    /// same outputs as they gave the original.
    /// </summary>
    /// <exception cref="InvalidDataException">The snapshot is inconsistent (arrays of different lengths, missing ones).</exception>
    public static SequencerState Restore(FixAnteOptions options, SequencerSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var shards = snapshot.Longs.Length > 0 ? snapshot.Longs[0].Length : 0;
        if (snapshot.Longs.Length != LongArrays || snapshot.Ints.Length != IntArrays || snapshot.Flags.Length != FlagArrays
            || snapshot.Scalars.Length != ScalarCount || shards < 1
            || snapshot.Longs.Any(a => a.Length != shards) || snapshot.Ints.Any(a => a.Length != shards) || snapshot.Flags.Any(a => a.Length != shards)
            || snapshot.RateMarks.Length != shards || snapshot.Latest.Length != shards)
        {
            throw new InvalidDataException($"A sequencer snapshot must hold {LongArrays}, {IntArrays} and {FlagArrays} per-shard arrays of one length, and {ScalarCount} counters.");
        }

        var state = new SequencerState(options, shards);
        state.History.StartAt(snapshot.Base);
        if (state.History.AddRange(snapshot.Windows) != snapshot.Windows.Length)
        {
            throw new InvalidDataException($"The snapshot's windows do not continue its base (window {snapshot.Base.Window}).");
        }

        for (var i = 0; i < LongArrays; i++)
        {
            state.LongsOf(i) = (long[])snapshot.Longs[i].Clone();
        }

        for (var i = 0; i < IntArrays; i++)
        {
            state.IntsOf(i) = (int[])snapshot.Ints[i].Clone();
        }

        for (var i = 0; i < FlagArrays; i++)
        {
            state.FlagsOf(i) = (bool[])snapshot.Flags[i].Clone();
        }

        state._rateMarks = [.. snapshot.RateMarks.Select(m => new Queue<(long Micros, long Records)>(m))];
        state._latest = ((long Micros, long Records)[])snapshot.Latest.Clone();
        for (var i = 0; i < ScalarCount; i++)
        {
            state.SetScalar(i, snapshot.Scalars[i]);
        }

        return state;
    }

    private ref long[] LongsOf(int i)
    {
        switch (i)
        {
            case 0: return ref _durableSlots;
            case 1: return ref _appliedSeq;
            case 2: return ref _lagFixTarget;
            case 3: return ref _cutBase;
            case 4: return ref _jumpEnvelope;
            case 5: return ref _jumpRecords;
            case 6: return ref _rejoinFrom;
            default: throw new ArgumentOutOfRangeException(nameof(i));
        }
    }

    private ref int[] IntsOf(int i)
    {
        switch (i)
        {
            case 0: return ref _knownWindows;
            case 1: return ref _strikes;
            case 2: return ref _groundedLeft;
            default: throw new ArgumentOutOfRangeException(nameof(i));
        }
    }

    private ref bool[] FlagsOf(int i)
    {
        switch (i)
        {
            case 0: return ref _reportedSinceCut;
            case 1: return ref _waiting;
            case 2: return ref _returning;
            case 3: return ref _joining;
            case 4: return ref _leaving;
            case 5: return ref _departed;
            case 6: return ref _failedOut;
            case 7: return ref _failing;
            default: throw new ArgumentOutOfRangeException(nameof(i));
        }
    }

    private long ScalarOf(int i) => i switch
    {
        0 => Failures,
        1 => Joins,
        2 => Leaves,
        3 => Rejoins,
        4 => CommittedCut,
        5 => ReportsApplied,
        6 => LagFixesIssued,
        7 => LagFixesAcknowledged,
        8 => Groundings,
        9 => TrimmedBelowGsn,
        10 => _waitingCount,
        11 => _pendingChanges,
        _ => throw new ArgumentOutOfRangeException(nameof(i)),
    };

    private void SetScalar(int i, long value)
    {
        switch (i)
        {
            case 0: Failures = value; break;
            case 1: Joins = value; break;
            case 2: Leaves = value; break;
            case 3: Rejoins = value; break;
            case 4: CommittedCut = value; break;
            case 5: ReportsApplied = value; break;
            case 6: LagFixesIssued = value; break;
            case 7: LagFixesAcknowledged = value; break;
            case 8: Groundings = value; break;
            case 9: TrimmedBelowGsn = value; break;
            case 10: _waitingCount = checked((int)value); break;
            case 11: _pendingChanges = checked((int)value); break;
            default: throw new ArgumentOutOfRangeException(nameof(i));
        }
    }
}
