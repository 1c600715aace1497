namespace SpecLog.FixAnte.Tests;

/// <summary>Feeds reports to a <see cref="SequencerState"/> with per-shard increasing sequence numbers.</summary>
internal sealed class SequencerDriver
{
    private readonly long[] _seq;

    public SequencerDriver(FixAnteOptions options, int shards, IEnumerable<WindowConfig>? recovered = null)
    {
        State = new SequencerState(options, shards, recovered);
        _seq = Enumerable.Repeat(-1L, shards).ToArray();
        InitOutput = new SequencerOutput();
        State.Initialize(InitOutput);
    }

    public SequencerState State { get; }

    public SequencerOutput InitOutput { get; }

    public long LastSeq(int shard) => _seq[shard];

    public SequencerOutput Report(int shard, long slots, long records = 0, long micros = 0, bool fixedLag = false)
    {
        var output = new SequencerOutput();
        State.Apply(new ShardReport(shard, ++_seq[shard], slots, records, micros, State.History.Count, fixedLag), output);
        return output;
    }

    /// <summary>The slots shard <paramref name="shard"/> needs to complete every cut below <paramref name="cut"/>, by the naive layout.</summary>
    public long SlotsToComplete(int shard, long cut) => NaiveLayout.OfConfigs(State.History.Windows).SlotsBeforeCut(shard, cut);

    public static FixAnteOptions Options(int w = 10, bool lagFix = false, bool rateBased = true, int tOrdMicros = 1000, int initialQuota = 1, int maxCutIntervalFactor = 1) => new()
    {
        MaxCutIntervalFactor = maxCutIntervalFactor, // 1: Belfast's cuts of one T_ord, which most tests pin
        LagFixFraction = 0.03, // Belfast's lag-fix threshold (3 cuts at W = 100), which these tests' arithmetic assumes
        CutsPerWindow = w,
        LagFixEnabled = lagFix,
        RateBasedQuotas = rateBased,
        OrderingInterval = TimeSpan.FromMicroseconds(tOrdMicros),
        InitialQuota = initialQuota,
    };
}
