using System.Collections.Immutable;
using SpecLog.FixAnte;

namespace SpecLog;

/// <summary>Wire form of <see cref="WindowConfig"/>, so the pure core needs no Orleans attributes.</summary>
[GenerateSerializer, Immutable, Alias("speclog.WindowConfig")]
public struct WindowConfigSurrogate
{
    /// <summary>See <see cref="WindowConfig.Window"/>.</summary>
    [Id(0)] public long Window;
    /// <summary>See <see cref="WindowConfig.StartGsn"/>.</summary>
    [Id(1)] public long StartGsn;
    /// <summary>See <see cref="WindowConfig.FirstCut"/>.</summary>
    [Id(2)] public long FirstCut;
    /// <summary>See <see cref="WindowConfig.CutsPerWindow"/>.</summary>
    [Id(3)] public int CutsPerWindow;
    /// <summary>See <see cref="WindowConfig.Quotas"/>.</summary>
    [Id(4)] public int[] Quotas;
    /// <summary>See <see cref="WindowConfig.ViewId"/>.</summary>
    [Id(5)] public long ViewId;
    /// <summary>See <see cref="WindowConfig.CutIntervalFactor"/> (0 on the wire from older senders means 1).</summary>
    [Id(6)] public int CutIntervalFactor;
    /// <summary>See <see cref="WindowConfig.RequestedLayout"/> (0, blocked, from older senders).</summary>
    [Id(7)] public CutLayout Layout;
    /// <summary>See <see cref="WindowConfig.Departed"/> (null from older senders: none).</summary>
    [Id(8)] public int[]? Departed;
    /// <summary>The shards of <see cref="WindowConfig.Voids"/> (null: none).</summary>
    [Id(9)] public int[]? VoidShards;
    /// <summary>The first void slots of <see cref="WindowConfig.Voids"/>, in the order of <see cref="VoidShards"/>.</summary>
    [Id(10)] public long[]? VoidFromSlots;
    /// <summary>The void ends of <see cref="WindowConfig.Voids"/> (-1 for failures), in the order of <see cref="VoidShards"/>; null from older senders (all failures).</summary>
    [Id(11)] public long[]? VoidToSlots;
}

/// <summary>Converts <see cref="WindowConfig"/> to and from its wire form.</summary>
[RegisterConverter]
public sealed class WindowConfigConverter : IConverter<WindowConfig, WindowConfigSurrogate>
{
    /// <inheritdoc />
    public WindowConfig ConvertFromSurrogate(in WindowConfigSurrogate s) =>
        new(s.Window, s.StartGsn, s.FirstCut, s.CutsPerWindow, ImmutableArray.Create(s.Quotas), s.ViewId, Math.Max(1, s.CutIntervalFactor), s.Layout, s.Departed is null ? [] : ImmutableArray.Create(s.Departed),
            Voids(s.VoidShards, s.VoidFromSlots, s.VoidToSlots));

    private static ImmutableArray<ShardVoid> Voids(int[]? shards, long[]? fromSlots, long[]? toSlots) =>
        shards is null || fromSlots is null
            ? []
            : [.. shards.Select((shard, i) => new ShardVoid(shard, fromSlots[i], toSlots is null ? -1 : toSlots[i]))];

    /// <inheritdoc />
    public WindowConfigSurrogate ConvertToSurrogate(in WindowConfig v) => new()
    {
        Window = v.Window,
        StartGsn = v.StartGsn,
        FirstCut = v.FirstCut,
        CutsPerWindow = v.CutsPerWindow,
        Quotas = [.. v.Quotas],
        ViewId = v.ViewId,
        CutIntervalFactor = v.CutIntervalFactor,
        Layout = v.RequestedLayout,
        Departed = v.Departed.IsEmpty ? null : [.. v.Departed],
        VoidShards = v.Voids.IsEmpty ? null : [.. v.Voids.Select(x => x.Shard)],
        VoidFromSlots = v.Voids.IsEmpty ? null : [.. v.Voids.Select(x => x.FromSlot)],
        VoidToSlots = v.Voids.Any(x => x.IsRejoin) ? [.. v.Voids.Select(x => x.ToSlot)] : null,
    };
}

/// <summary>Wire form of <see cref="WindowBase"/>.</summary>
[GenerateSerializer, Immutable, Alias("speclog.WindowBase")]
public struct WindowBaseSurrogate
{
    /// <summary>See <see cref="WindowBase.Window"/>.</summary>
    [Id(0)] public long Window;
    /// <summary>See <see cref="WindowBase.StartGsn"/>.</summary>
    [Id(1)] public long StartGsn;
    /// <summary>See <see cref="WindowBase.FirstCut"/>.</summary>
    [Id(2)] public long FirstCut;
    /// <summary>See <see cref="WindowBase.SlotStart"/>.</summary>
    [Id(3)] public long[] SlotStart;
    /// <summary>The shards of <see cref="WindowBase.Voids"/>.</summary>
    [Id(4)] public int[] VoidShards;
    /// <summary>[from, to, window, rejoin 0/1] of each void, in the order of <see cref="VoidShards"/>.</summary>
    [Id(5)] public long[] VoidSpans;
}

/// <summary>Converts <see cref="WindowBase"/> to and from its wire form.</summary>
[RegisterConverter]
public sealed class WindowBaseConverter : IConverter<WindowBase, WindowBaseSurrogate>
{
    /// <inheritdoc />
    public WindowBase ConvertFromSurrogate(in WindowBaseSurrogate s)
    {
        var spans = s.VoidSpans;
        var voids = s.VoidShards.Select((shard, i) => new VoidSpan(shard, spans[4 * i], spans[(4 * i) + 1], spans[(4 * i) + 2], spans[(4 * i) + 3] != 0));
        return new WindowBase(s.Window, s.StartGsn, s.FirstCut, ImmutableArray.Create(s.SlotStart), [.. voids]);
    }

    /// <inheritdoc />
    public WindowBaseSurrogate ConvertToSurrogate(in WindowBase v) => new()
    {
        Window = v.Window,
        StartGsn = v.StartGsn,
        FirstCut = v.FirstCut,
        SlotStart = [.. v.SlotStart],
        VoidShards = [.. v.Voids.Select(x => x.Shard)],
        VoidSpans = [.. v.Voids.SelectMany(x => new[] { x.FromSlot, x.ToSlot, x.Window, x.IsRejoin ? 1L : 0L })],
    };
}

/// <summary>Wire form of <see cref="ShardReport"/>.</summary>
[GenerateSerializer, Immutable, Alias("speclog.ShardReport")]
public struct ShardReportSurrogate
{
    /// <summary>See <see cref="ShardReport.Shard"/>.</summary>
    [Id(0)] public int Shard;
    /// <summary>See <see cref="ShardReport.ReportSeq"/>.</summary>
    [Id(1)] public long ReportSeq;
    /// <summary>See <see cref="ShardReport.DurableSlots"/>.</summary>
    [Id(2)] public long DurableSlots;
    /// <summary>See <see cref="ShardReport.RealRecords"/>.</summary>
    [Id(3)] public long RealRecords;
    /// <summary>See <see cref="ShardReport.TimestampMicros"/>.</summary>
    [Id(4)] public long TimestampMicros;
    /// <summary>See <see cref="ShardReport.KnownWindows"/>.</summary>
    [Id(5)] public int KnownWindows;
    /// <summary>See <see cref="ShardReport.FixedLag"/>.</summary>
    [Id(6)] public bool FixedLag;
    /// <summary>See <see cref="ShardReport.Waiting"/>.</summary>
    [Id(7)] public bool Waiting;
    /// <summary>See <see cref="ShardReport.Control"/> (0, none, from older senders).</summary>
    [Id(8)] public ShardControl Control;
}

/// <summary>Converts <see cref="ShardReport"/> to and from its wire form.</summary>
[RegisterConverter]
public sealed class ShardReportConverter : IConverter<ShardReport, ShardReportSurrogate>
{
    /// <inheritdoc />
    public ShardReport ConvertFromSurrogate(in ShardReportSurrogate s) =>
        new(s.Shard, s.ReportSeq, s.DurableSlots, s.RealRecords, s.TimestampMicros, s.KnownWindows, s.FixedLag, s.Waiting, s.Control);

    /// <inheritdoc />
    public ShardReportSurrogate ConvertToSurrogate(in ShardReport v) => new()
    {
        Shard = v.Shard,
        ReportSeq = v.ReportSeq,
        DurableSlots = v.DurableSlots,
        RealRecords = v.RealRecords,
        TimestampMicros = v.TimestampMicros,
        KnownWindows = v.KnownWindows,
        FixedLag = v.FixedLag,
        Waiting = v.Waiting,
        Control = v.Control,
    };
}
