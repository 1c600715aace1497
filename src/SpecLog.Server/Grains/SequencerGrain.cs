using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Placement;
using SpecLog.Server.Diagnostics;
using SpecLog.Server.Placement;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering;
using SpecLog.Server.Hosting;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>
/// The single sequencer replica: a thin host around <see cref="SequencerState"/>. It persists every new window before
/// anybody hears of it (so a restart never decides a window differently), then tells shards about commits, windows
/// and lag-fixes with one-way calls. When the ordering layer is replicated it keeps no state of its own and only
/// passes calls on to the replicas (so clients and tools reach the sequencer the same way in every mode).
/// </summary>
[Immovable]
[SequencerHomePlacement]
internal sealed partial class SequencerGrain(
    IOptions<SpecLogOptions> options,
    TimeProvider timeProvider,
    SiloLogs siloLogs,
    IOrderingLayer ordering,
    ILogger<SequencerGrain> logger) : Grain, ISequencerGrain
{
    private const string BaseFile = "history-base.bin";

    private readonly SpecLogOptions _options = options.Value;
    private readonly SequencerOutput _output = new();
    private SequencerState _state = null!;
    private IDisposable? _metrics;
    private DurableLog _windowLog = null!;
    private SequencerPublisher _publisher = null!;
    private bool _replicated;
    private ShardFailureDetector? _failures;
    private long _lastProgressCut = -1;
    private long _lastProgressTicks;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (this.GetPrimaryKeyLong() != 0)
        {
            throw new InvalidOperationException("The sequencer is grain 0; other keys are not used.");
        }

        if (_options.Replication.IsReplicated)
        {
            _replicated = true;
            await base.OnActivateAsync(cancellationToken);
            return;
        }

        OrderingModeGuard.Check(_options.DataDirectory, SequencerReplication.Single);
        _windowLog = await siloLogs.OpenAsync(new DurableLogOptions
        {
            Directory = Path.Combine(_options.DataDirectory, "sequencer"),
            SegmentSize = 4 << 20,
            Fsync = _options.Fsync,
        });
        // After a trim the history starts at a base kept beside the window log (written before the log's segments
        // below it were deleted, so windows older than the base may still be read: the history skips them).
        var basePath = Path.Combine(_options.DataDirectory, "sequencer", BaseFile);
        WindowBase? recoveredBase = null;
        long recoveredTrim = 0;
        if (File.Exists(basePath))
        {
            using var reader = new BinaryReader(new MemoryStream(await File.ReadAllBytesAsync(basePath, cancellationToken)));
            recoveredBase = WindowBaseCodec.Read(reader);
            recoveredTrim = reader.ReadInt64();
        }

        var windows = new List<WindowConfig>();
        for (var i = _windowLog.FirstIndex; i < _windowLog.NextIndex;)
        {
            var batch = _windowLog.ReadRange(i, 1024);
            foreach (var e in batch)
            {
                windows.Add(WindowCodec.Decode(e.Payload.Span));
            }

            i += batch.Count;
        }

        _state = new SequencerState(_options.Ordering, _options.ShardCount, windows, recoveredBase);
        _state.RecoverTrimPoint(recoveredTrim);
        _publisher = new SequencerPublisher(_options.ShardCount, GrainFactory, versionBase: SpecLogMetrics.NowMicros(), shardReplicas: _options.EffectiveShardReplicas);
        _output.Clear();
        _state.Initialize(_output);
        await PersistNewWindowsAsync();
        LogActivated(logger, windows.Count, _state.History.Count, _options.Ordering.Mode);
        var period = _options.Ordering.FallbackInterval;
        this.RegisterGrainTimer(OnFallbackTimerAsync, new GrainTimerCreationOptions(period, period) { KeepAlive = true });
        _failures = _options.EffectiveShardFailureTimeout is { } failAfter ? new ShardFailureDetector(failAfter, timeProvider) : null;
        _lastProgressTicks = timeProvider.GetTimestamp();
        _metrics = OrderingMetrics.AddSource("sequencer", () => new OrderingFigures(_state.CommittedCut, _state.LagFixesIssued, _state.Failures, Replicated: false));
        await base.OnActivateAsync(cancellationToken);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _metrics?.Dispose();
        if (_windowLog is not null)
        {
            await siloLogs.CloseAsync(_windowLog);
        }

        await base.OnDeactivateAsync(reason, cancellationToken);
    }

    public async Task Report(ShardReport report)
    {
        if (_replicated)
        {
            ordering.SendReport(report);
            return;
        }

        if ((uint)report.Shard >= (uint)_state.ShardCount)
        {
            LogUnknownShard(logger, report.Shard);
            return;
        }

        var received = SpecLogMetrics.NowMicros();
        SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ReportTransit, report.TimestampMicros, received);
        var trace = OrderingTracing.Start(report, replica: -1);
        try
        {
            _output.Clear();
            _state.Apply(report, _output);
            await PersistNewWindowsAsync();
        }
        catch (Exception e) when (SpecLogTracing.Failed(trace, e))
        {
            throw; // not reached: the filter only records the failure
        }
        finally
        {
            if (trace is not null)
            {
                OrderingTracing.Executed(trace, _state.CommittedCut);
            }
        }

        SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.Ordering, received, SpecLogMetrics.NowMicros());
        if (_output.Duplicate)
        {
            // A retransmission: the shard missed something. Answer it alone with everything it lacks.
            _publisher.Answer(_state, report.Shard);
            return;
        }

        _publisher.Publish(_state, _output);
        foreach (var behind in _output.BehindShards)
        {
            _publisher.Answer(_state, behind);
        }
    }

    public async Task RequestShardChangeAsync(ShardControl change, int shard)
    {
        if (change == ShardControl.None || !Enum.IsDefined(change))
        {
            throw new ArgumentException($"{change} is not a change of the shard set.", nameof(change));
        }

        var status = await GetStatusAsync();
        var refusal = ShardChangeRefusal(status, change, shard);
        if (refusal is not null)
        {
            throw new ArgumentException(refusal, nameof(shard));
        }

        var request = ShardReport.ForControl(change, shard, SpecLogMetrics.NowMicros());
        if (_replicated)
        {
            ordering.SendReport(request);
            return;
        }

        _output.Clear();
        _state.Apply(request, _output);
        if (_output.ControlRefused is { } refused)
        {
            throw new ArgumentException(refused, nameof(shard));
        }

        LogShardChange(logger, change, shard);
        await PersistNewWindowsAsync();
        _publisher.Publish(_state, _output);
    }

    /// <summary>Why <paramref name="change"/> of <paramref name="shard"/> is impossible in the log <paramref name="status"/> describes; null if it is possible (or done already).</summary>
    internal static string? ShardChangeRefusal(SequencerStatus status, ShardControl change, int shard)
    {
        var departed = status.DepartedShards ?? [];
        if (change == ShardControl.Join)
        {
            return shard > status.ShardCount || shard < 0
                ? $"Shard {shard} cannot join: the next shard id is {status.ShardCount}."
                : shard < status.ShardCount && departed.Contains(shard) ? $"Shard {shard} left the log; a removed shard does not come back (add a new one)." : null;
        }

        if (shard < 0 || shard >= status.ShardCount)
        {
            return $"Unknown shard {shard}: the log has shards 0 to {status.ShardCount - 1}.";
        }

        var staying = status.ActiveShards.Where(s => s != shard).ToArray();
        return staying.Length == 0 && !departed.Contains(shard) && !(status.LeavingShards ?? []).Contains(shard)
            ? $"Shard {shard} cannot leave: it is the last shard of the log."
            : null;
    }

    public Task<WindowSlice> GetWindowsAsync(long fromWindow)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromWindow);
        if (_replicated)
        {
            return ordering.GetWindowsAsync(fromWindow);
        }

        return Task.FromResult(SequencerPublisher.WindowsFrom(_state, fromWindow));
    }

    public async Task TrimHistoryAsync(long gsn)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gsn);
        if (_replicated)
        {
            await TrimReplicatedHistoryAsync(gsn);
            return;
        }

        var request = ShardReport.ForControl(ShardControl.Trim, 0, SpecLogMetrics.NowMicros(), gsn);
        var first = _state.History.First;
        _output.Clear();
        _state.Apply(request, _output);
        if (_state.History.First == first)
        {
            return;
        }

        // The base first (atomically replaced, fsync'd), then the window log's whole segments below it: a crash
        // between the two leaves older windows the recovery skips.
        var history = _state.History;
        using (var bytes = new MemoryStream())
        {
            using (var writer = new BinaryWriter(bytes))
            {
                WindowBaseCodec.Write(writer, history.Base());
                writer.Write(_state.TrimmedBelowGsn);
            }

            DurableFile.Replace(Path.Combine(_options.DataDirectory, "sequencer", BaseFile), bytes.ToArray(), _options.Fsync);
        }

        var firstEntry = _windowLog.TrimBefore(history.First);
        LogHistoryTrimmed(logger, gsn, history.First, history.Windows.Count, firstEntry);
    }

    /// <summary>
    /// Orders the trim through the replicated ordering layer and waits until it executed (a report to a pilot that
    /// just lost its role may be dropped: it is repeated every 200 ms, each time a new request, for up to 10 s).
    /// </summary>
    private async Task TrimReplicatedHistoryAsync(long gsn)
    {
        var deadline = timeProvider.GetTimestamp() + (long)(10 * timeProvider.TimestampFrequency);
        while (true)
        {
            ordering.SendReport(ShardReport.ForControl(ShardControl.Trim, 0, SpecLogMetrics.NowMicros(), gsn));
            for (var poll = 0; poll < 10; poll++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), timeProvider);
                var status = await ordering.GetStatusAsync();
                if (status.TrimmedBelowGsn >= Math.Min(gsn, status.CommittedGsn))
                {
                    return;
                }
            }

            if (timeProvider.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"The ordering layer did not apply the trim below GSN {gsn} within 10 s (the shards were trimmed; its window history was not). Repeat TrimAsync.");
            }
        }
    }

    public Task<SequencerStatus> GetStatusAsync() =>
        _replicated ? ordering.GetStatusAsync() : Task.FromResult(SequencerPublisher.Describe(_state, _options));

    /// <inheritdoc />
    public Task<SequencerStatus> GetState() => GetStatusAsync();

    private async Task OnFallbackTimerAsync(CancellationToken cancellationToken)
    {
        foreach (var shard in _failures?.Check(_state) ?? [])
        {
            LogShardFailed(logger, shard, _options.EffectiveShardFailureTimeout!.Value.TotalMilliseconds, _state.DurableSlotsOf(shard));
            _output.Clear();
            _state.Apply(ShardReport.ForControl(ShardControl.Fail, shard, SpecLogMetrics.NowMicros(), _state.AppliedSeqOf(shard)), _output);
            await PersistNewWindowsAsync();
            _publisher.Publish(_state, _output);
        }

        var now = timeProvider.GetTimestamp();
        if (_state.CommittedCut != _lastProgressCut)
        {
            _lastProgressCut = _state.CommittedCut;
            _lastProgressTicks = now;
            return;
        }

        if (!_state.AnyWaiting || timeProvider.GetElapsedTime(_lastProgressTicks, now) < _options.Ordering.FallbackInterval)
        {
            return;
        }

        _lastProgressTicks = now;
        _output.Clear();
        _state.EvaluateFallback(_output);
        await PersistNewWindowsAsync();
        _publisher.Rewind(_state); // re-send what may have been lost
        _publisher.Publish(_state, _output);
    }

    private async Task PersistNewWindowsAsync()
    {
        if (_output.NewWindows.Count == 0)
        {
            return;
        }

        foreach (var w in _output.NewWindows)
        {
            _windowLog.Append(WindowCodec.Kind, WindowCodec.Encode(w));
            LogWindowDecided(logger, w.Window, w.StartGsn, string.Join(',', w.Quotas));
        }

        await _windowLog.FlushAsync();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer: log trimmed below GSN {Gsn}; the window history starts at window {First} now ({Retained} retained; the window log keeps entries from {FirstEntry})")]
    private static partial void LogHistoryTrimmed(ILogger logger, long gsn, int first, int retained, long firstEntry);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer activated: {Recovered} windows recovered, {Total} known, mode {Mode}")]
    private static partial void LogActivated(ILogger logger, int recovered, int total, OrderingMode mode);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Window {Window} decided: start GSN {StartGsn}, quotas [{Quotas}]")]
    private static partial void LogWindowDecided(ILogger logger, long window, long startGsn, string quotas);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard-set change: {Change} of shard {Shard}, decided with the next window")]
    private static partial void LogShardChange(ILogger logger, ShardControl change, int shard);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shard {Shard} failed: it held the log back and was not heard of for {TimeoutMs} ms; its slots from {DurableSlots} on become no-ops and the log goes on without it")]
    private static partial void LogShardFailed(ILogger logger, int shard, double timeoutMs, long durableSlots);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Report from unknown shard {Shard} ignored")]
    private static partial void LogUnknownShard(ILogger logger, int shard);
}
