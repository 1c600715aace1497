using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SpecLog.Client;

namespace SpecLog.Consumer;

/// <summary>
/// Gives an application the latency of speculation with the simplicity of a confirmed log: applies every record the
/// moment it is delivered speculatively, releases each output to the sink only once the record that produced it is
/// confirmed (exactly once, in order), and on a mis-speculation rolls the state back to just before the range, drops the
/// outputs produced inside it and applies the corrected records as they come. The application writes only a
/// deterministic apply function; rollback needs no code of its own.
/// </summary>
/// <remarks>
/// With <see cref="SpeculativeConsumerOptions.Checkpoints"/> on, the consumer saves where it stands (the newest
/// confirmed snapshot of its state, and how far its outputs were released) through an
/// <see cref="IConsumerCheckpointGrain"/>, and a restart (after a crash too) resumes there. An output released after
/// the last checkpoint is derived again after a crash; a sink that implements <see cref="IResumableOutputSink{TOutput}"/>
/// tells the consumer what it took, and nothing is released twice. With <see cref="SpeculativeConsumerOptions.Group"/>
/// on, consumers of the same name split the shards between them (see <see cref="IConsumerGroupGrain"/>).
/// </remarks>
public sealed partial class SpeculativeConsumer<TState, TOutput>
{
    private readonly SpecLogClient _client;
    private readonly IGrainFactory _grains;
    private readonly string _name;
    private readonly Func<TState> _newState;
    private readonly ApplyRecord<TState, TOutput> _apply;
    private readonly IOutputSink<TOutput> _sink;
    private readonly IStateCodec<TState> _codec;
    private readonly SpeculativeConsumerOptions _options;
    private readonly ILogger _logger;
    private readonly Dictionary<int, Partition> _partitions = [];
    private readonly List<ReleasedOutput<TOutput>> _released = [];
    private readonly List<ReleasedOutput<TOutput>> _toSink = [];
    private int _running;

    /// <summary>Creates a consumer named <paramref name="name"/> (its checkpoints' key, and its group's name).</summary>
    /// <param name="client">The log.</param>
    /// <param name="name">The consumer's name: a restart with the same name resumes from its checkpoint.</param>
    /// <param name="newState">The state before any record (called once per shard for <see cref="ConsumerOrdering.PerShard"/>).</param>
    /// <param name="apply">Applies one record: deterministic, no effects outside the state except the outputs it emits.</param>
    /// <param name="sink">Takes the confirmed outputs.</param>
    /// <param name="codec">Copies the state for rollback and serializes it for checkpoints (<see cref="OrleansStateCodec{TState}"/> fits most states).</param>
    /// <param name="options">Settings (defaults if null).</param>
    /// <param name="logger">Where rollbacks, checkpoints and rebalances are logged.</param>
    public SpeculativeConsumer(
        SpecLogClient client,
        string name,
        Func<TState> newState,
        ApplyRecord<TState, TOutput> apply,
        IOutputSink<TOutput> sink,
        IStateCodec<TState> codec,
        SpeculativeConsumerOptions? options = null,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Contains('/'))
        {
            throw new ArgumentException("A consumer's name may not contain '/'.", nameof(name));
        }

        _client = client;
        _grains = client.GrainFactory;
        _name = name;
        _newState = newState ?? throw new ArgumentNullException(nameof(newState));
        _apply = apply ?? throw new ArgumentNullException(nameof(apply));
        _sink = sink ?? throw new ArgumentNullException(nameof(sink));
        _codec = codec ?? throw new ArgumentNullException(nameof(codec));
        _options = options ?? new SpeculativeConsumerOptions();
        _options.Validate();
        _logger = logger ?? NullLogger.Instance;
        MemberId = _options.MemberId ?? $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid():N}"[..^24];
    }

    /// <summary>This consumer's member name in its group.</summary>
    public string MemberId { get; }

    /// <summary>Counters, readable while the consumer runs.</summary>
    public ConsumerStatistics Statistics { get; } = new();

    /// <summary>The shards this consumer works on now (-1 alone for a GSN-ordered consumer of the whole log).</summary>
    public int[] Partitions => Volatile.Read(ref _held);

    /// <summary>
    /// The state of <paramref name="shard"/>'s partition (-1 for a GSN-ordered consumer), speculative records included.
    /// Read it only from the apply function or the sink, or after <see cref="RunAsync"/> has returned.
    /// </summary>
    public TState? StateOf(int shard = -1) => _partitions.TryGetValue(shard, out var p) ? p.Engine.State : default;

    private int[] _held = [];

    /// <summary>
    /// Consumes until <paramref name="cancellationToken"/> is cancelled (then saves a last checkpoint and returns) or
    /// something fails (the subscription, the apply function, the sink, a checkpoint taken over by another consumer of
    /// the same name), which it throws. Run it once per consumer.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _running, 1) != 0)
        {
            throw new InvalidOperationException("A consumer runs once.");
        }

        using var membership = _options.Group ? new GroupMembership(this) : null;
        var changed = new AsyncSignal();
        membership?.Start(changed, cancellationToken);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                changed.Reset();
                try
                {
                    var target = await TargetAsync(membership, cancellationToken);
                    await ReconcileAsync(target, cancellationToken);
                    if (_partitions.Count == 0)
                    {
                        await changed.WaitAsync(ShardSetPoll, cancellationToken);
                        continue;
                    }

                    await RunSessionAsync(changed, membership is null && _options.Ordering == ConsumerOrdering.PerShard, cancellationToken);
                }
                catch (CheckpointFencedException e) when (membership is not null)
                {
                    // Another member took a shard of ours (our lease lapsed unseen): drop everything unsaved and take
                    // again only what the coordinator assigns.
                    LogFenced(_logger, e, _name, MemberId);
                    _saving = null;
                    _partitions.Clear();
                    Volatile.Write(ref _held, []);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            await StopAsync(membership);
        }
    }

    private static readonly TimeSpan ShardSetPoll = TimeSpan.FromSeconds(2);

    /// <summary>The partitions to hold: the whole log, every shard, or the group's assignment.</summary>
    private async Task<int[]> TargetAsync(GroupMembership? membership, CancellationToken cancellationToken)
    {
        if (_options.Ordering == ConsumerOrdering.Gsn)
        {
            return [-1];
        }

        if (membership is not null)
        {
            return membership.Assigned;
        }

        // Every shard, those that left the log included (their records stay readable; nothing new comes).
        var active = await _client.GetActiveShardsAsync(cancellationToken);
        return [.. active.Union(_partitions.Keys).Order()];
    }

    /// <summary>
    /// One subscription over the partitions held, until the partition set must change (a rebalance, a new shard) or the
    /// consumer stops. Events are pumped through a channel so that checkpoints are saved also while the log is idle.
    /// </summary>
    private async Task RunSessionAsync(AsyncSignal changed, bool pollShards, CancellationToken cancellationToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var events = Channel.CreateBounded<SpecLogEvent>(new BoundedChannelOptions(1024) { SingleReader = true, SingleWriter = true });
        var pump = PumpAsync(Subscribe(session.Token), events.Writer, session.Token);
        var nextShardPoll = DateTime.UtcNow + ShardSetPoll;
        try
        {
            while (true)
            {
                while (events.Reader.TryRead(out var e))
                {
                    await HandleAsync(e, cancellationToken);
                }

                await CheckpointIfDueAsync(cancellationToken);
                if (changed.IsSet)
                {
                    return; // resubscribe with the new partition set
                }

                if (pollShards && DateTime.UtcNow >= nextShardPoll)
                {
                    nextShardPoll = DateTime.UtcNow + ShardSetPoll;
                    if (await ShardSetChangedAsync(cancellationToken))
                    {
                        return; // a shard joined the log: resubscribe with it
                    }
                }

                var wait = events.Reader.WaitToReadAsync(cancellationToken).AsTask();
                var finished = await Task.WhenAny(wait, changed.Task, Task.Delay(_options.CheckpointInterval / 2, cancellationToken));
                if (finished == wait && !await wait)
                {
                    await events.Reader.Completion; // the subscription ended: throws what ended it
                    throw new InvalidOperationException("The subscription ended.");
                }
            }
        }
        finally
        {
            await session.CancelAsync();
            try
            {
                await pump;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private async Task<bool> ShardSetChangedAsync(CancellationToken cancellationToken)
    {
        var active = await _client.GetActiveShardsAsync(cancellationToken);
        return active.Any(s => !_partitions.ContainsKey(s));
    }

    private IAsyncEnumerable<SpecLogEvent> Subscribe(CancellationToken token) =>
        _options.Ordering == ConsumerOrdering.Gsn
            ? (_options.Filter is { } filter ? _client.SubscribeAsync(filter, _partitions[-1].Engine.NextGsn, token) : _client.SubscribeAsync(_partitions[-1].Engine.NextGsn, token))
            : _client.SubscribeShardsAsync(_partitions.ToDictionary(p => p.Key, p => p.Value.Engine.NextGsn), _options.Filter, token);

    private static async Task PumpAsync(IAsyncEnumerable<SpecLogEvent> source, ChannelWriter<SpecLogEvent> writer, CancellationToken token)
    {
        try
        {
            await foreach (var e in source.WithCancellation(token))
            {
                await writer.WriteAsync(e, token);
            }

            writer.TryComplete();
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            writer.TryComplete();
        }
        catch (Exception e)
        {
            writer.TryComplete(e);
        }
    }

    private async ValueTask HandleAsync(SpecLogEvent e, CancellationToken cancellationToken)
    {
        switch (e)
        {
            case SpeculativeRecord r:
                if (PartitionOf(r.Shard) is { } owner)
                {
                    owner.Engine.Apply(new ConsumedRecord(r.Gsn, r.Shard, r.Payload), _released);
                    Statistics.AddApplied();
                }

                break;
            case ConfirmedRange c:
                foreach (var p in _partitions.Values)
                {
                    p.Engine.Confirm(c.ToGsn, _released);
                }

                Statistics.SetConfirmedThrough(c.ToGsn);
                break;
            case MisSpeculatedRange m:
                RollBack(m);
                break;
        }

        if (_released.Count > 0)
        {
            await ReleaseAsync(cancellationToken);
        }
    }

    private Partition? PartitionOf(int shard) =>
        _options.Ordering == ConsumerOrdering.Gsn ? _partitions[-1] : _partitions.GetValueOrDefault(shard);

    private void RollBack(MisSpeculatedRange m)
    {
        var key = _options.Ordering == ConsumerOrdering.Gsn ? -1 : m.Shard;
        if (!_partitions.TryGetValue(key, out var p))
        {
            return;
        }

        var discardedBefore = p.Engine.DiscardedOutputs;
        var undone = p.Engine.RollBack(m.FromGsn);
        var notice = new RollbackNotice(m, key, undone, p.Engine.DiscardedOutputs - discardedBefore);
        Statistics.AddRollback(notice);
        LogRolledBack(_logger, _name, m.FromGsn, m.ToGsn, m.Shard, undone, notice.DiscardedOutputs);
        _options.OnRollback?.Invoke(notice);
    }

    /// <summary>Hands the confirmed outputs to the sink, leaving out those a resumable sink already holds.</summary>
    private async ValueTask ReleaseAsync(CancellationToken cancellationToken)
    {
        _toSink.Clear();
        foreach (var o in _released)
        {
            if (_sinkHas is null || !_sinkHas.TryGetValue(o.Shard, out var has) || o.IsAfter(has.Gsn, has.Index))
            {
                _toSink.Add(o);
            }
        }

        _released.Clear();
        if (_toSink.Count > 0)
        {
            await _sink.ReleaseAsync(_toSink, cancellationToken);
            Statistics.AddReleased(_toSink.Count);
        }
    }

    private IReadOnlyDictionary<int, OutputId>? _sinkHas;

    /// <summary>One partition (the whole log, or one shard) and its engine.</summary>
    private sealed class Partition(int shard, SpeculationEngine<TState, TOutput> engine, long fence)
    {
        public int Shard { get; } = shard;

        public SpeculationEngine<TState, TOutput> Engine { get; } = engine;

        public long Fence { get; } = fence;

        public string Name => NameOf(Shard);

        /// <summary>The checkpoint partition of <paramref name="shard"/> (-1: the whole log).</summary>
        public static string NameOf(int shard) => shard < 0 ? ConsumerCheckpoints.WholeLog : shard.ToString(System.Globalization.CultureInfo.InvariantCulture);

        /// <summary>What the last successful save held (position, release point).</summary>
        public (long Position, long Released) Saved { get; set; } = (-1, -1);
    }

    [LoggerMessage(EventId = 7007, Level = LogLevel.Warning, Message = "Consumer group {Group}: {Member} was fenced off a shard; it drops its shards and takes its assignment again")]
    private static partial void LogFenced(ILogger logger, Exception e, string group, string member);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Consumer {Consumer} rolled back: mis-speculation [{From}, {To}) of shard {Shard} undid {Undone} applied records and dropped {Discarded} held outputs")]
    private static partial void LogRolledBack(ILogger logger, string consumer, long from, long to, int shard, int undone, long discarded);
}
