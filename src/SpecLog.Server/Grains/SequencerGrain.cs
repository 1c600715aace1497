using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Placement;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>
/// The single sequencer replica: a thin host around <see cref="SequencerState"/>. It persists every new window before
/// anybody hears of it (so a restart never decides a window differently), then tells shards about commits, windows
/// and lag-fixes with one-way calls.
/// </summary>
[Immovable]
internal sealed partial class SequencerGrain(
    IOptions<SpecLogOptions> options,
    TimeProvider timeProvider,
    ILogger<SequencerGrain> logger) : Grain, ISequencerGrain
{
    private readonly SpecLogOptions _options = options.Value;
    private readonly SequencerOutput _output = new();
    private SequencerState _state = null!;
    private DurableLog _windowLog = null!;
    private long[] _sentWindows = [];
    private long _lastProgressCut = -1;
    private long _lastProgressTicks;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (this.GetPrimaryKeyLong() != 0)
        {
            throw new InvalidOperationException("The sequencer is grain 0; other keys are not used.");
        }

        _windowLog = DurableLog.Open(new DurableLogOptions
        {
            Directory = Path.Combine(_options.DataDirectory, "sequencer"),
            SegmentSize = 4 << 20,
            Fsync = _options.Fsync,
        });
        var windows = new List<WindowConfig>();
        for (long i = 0; i < _windowLog.NextIndex;)
        {
            var batch = _windowLog.ReadRange(i, 1024);
            foreach (var e in batch)
            {
                windows.Add(WindowCodec.Decode(e.Payload.Span));
            }

            i += batch.Count;
        }

        _state = new SequencerState(_options.Ordering, _options.ShardCount, windows);
        _sentWindows = new long[_options.ShardCount];
        _output.Clear();
        _state.Initialize(_output);
        await PersistNewWindowsAsync();
        LogActivated(logger, windows.Count, _state.History.Count, _options.Ordering.Mode);
        var period = _options.Ordering.FallbackInterval;
        this.RegisterGrainTimer(OnFallbackTimerAsync, new GrainTimerCreationOptions(period, period) { KeepAlive = true });
        _lastProgressTicks = timeProvider.GetTimestamp();
        await base.OnActivateAsync(cancellationToken);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_windowLog is not null)
        {
            await _windowLog.DisposeAsync();
        }

        await base.OnDeactivateAsync(reason, cancellationToken);
    }

    public async Task Report(ShardReport report)
    {
        if ((uint)report.Shard >= (uint)_options.ShardCount)
        {
            LogUnknownShard(logger, report.Shard);
            return;
        }

        _output.Clear();
        _state.Apply(report, _output);
        await PersistNewWindowsAsync();
        if (_output.Duplicate)
        {
            // A retransmission: the shard missed something. Answer it alone with everything it lacks.
            Notify(report.Shard, _state.KnownWindowsOf(report.Shard), 0);
            return;
        }

        Publish();
    }

    public Task<WindowConfig[]> GetWindowsAsync(long fromWindow)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromWindow);
        var all = _state.History.Windows;
        var from = (int)Math.Min(fromWindow, all.Count);
        return Task.FromResult(all.Skip(from).ToArray());
    }

    public Task<SequencerStatus> GetStatusAsync()
    {
        var completed = new long[_options.ShardCount];
        for (var s = 0; s < completed.Length; s++)
        {
            completed[s] = _state.CompletedCutOf(s);
        }

        return Task.FromResult(new SequencerStatus(
            _options.ShardCount,
            _state.CommittedCut,
            _state.CommittedGsn,
            _state.History.Count,
            _state.History.Last,
            _state.ReportsApplied,
            _state.LagFixesIssued,
            _state.LagFixesAcknowledged,
            completed,
            _options.Ordering.Mode.ToString(),
            _options.MaxRecordSize,
            _options.MaxBatchRecords));
    }

    private async Task OnFallbackTimerAsync(CancellationToken cancellationToken)
    {
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
        for (var s = 0; s < _options.ShardCount; s++)
        {
            _sentWindows[s] = Math.Min(_sentWindows[s], _state.KnownWindowsOf(s)); // re-send what may have been lost
        }

        Publish();
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

    private void Publish()
    {
        Span<long> lagTarget = stackalloc long[_options.ShardCount];
        foreach (var (shard, target) in _output.LagFixes)
        {
            lagTarget[shard] = target;
        }

        var broadcast = _output.CommitAdvanced || _output.NewWindows.Count > 0 || _output.WaitingChanged;
        for (var s = 0; s < _options.ShardCount; s++)
        {
            if (broadcast || lagTarget[s] > 0)
            {
                Notify(s, Math.Max(_state.KnownWindowsOf(s), _sentWindows[s]), lagTarget[s]);
            }
        }
    }

    private void Notify(int shard, long fromWindow, long lagFixTarget)
    {
        var all = _state.History.Windows;
        var windows = fromWindow >= all.Count ? [] : all.Skip((int)fromWindow).ToArray();
        _sentWindows[shard] = all.Count;
        GrainFactory.GetGrain<IShardGrain>(shard)
            .OnCommitted(new CommitNotice(_state.CommittedCut, windows, lagFixTarget, _state.AnyWaiting))
            .Ignore();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer activated: {Recovered} windows recovered, {Total} known, mode {Mode}")]
    private static partial void LogActivated(ILogger logger, int recovered, int total, OrderingMode mode);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Window {Window} decided: start GSN {StartGsn}, quotas [{Quotas}]")]
    private static partial void LogWindowDecided(ILogger logger, long window, long startGsn, string quotas);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Report from unknown shard {Shard} ignored")]
    private static partial void LogUnknownShard(ILogger logger, int shard);
}
