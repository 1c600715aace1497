using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SpecLog.Copilot;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering;
using SpecLog.Server.Ordering.Copilot;

namespace SpecLog.Server.Grains;

/// <summary>
/// A replica that starts with nothing on disk cannot tell a new ordering layer from a lost disk, and trusting it is
/// unsafe (its lost self may have promised ballots and accepted entries it no longer knows of). It <em>probes</em> its
/// peers first (one-way both ways, so replicas that all start blank answer each other):
/// <list type="bullet">
/// <item>if a majority, itself included, is blank and nobody holds state, the ordering layer is new: it starts fresh;</item>
/// <item>if anybody holds state, it <em>rebuilds</em> once every other replica answered: it copies the most advanced
/// donor's committed entries and sequencer state (<see cref="GetTransferChunkAsync"/>, never the donor's votes),
/// takes as floor the highest promises, known entries and ballot rounds of all the others, starts an incarnation above
/// every one they knew of it, and persists all that as a checkpoint before it acts. The core then abstains on every
/// entry its lost self may have voted on (see <c>Replica.Rebuild</c>) and learns their outcome from the others.</item>
/// </list>
/// </summary>
internal sealed partial class SequencerReplicaGrain
{
    /// <summary>A transfer is pulled in chunks of this size (a donor's uncompacted state can be tens of megabytes).</summary>
    private const int TransferChunkBytes = 1 << 20;

    private static readonly TimeSpan TransferChunkTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan TransferIdleTimeout = TimeSpan.FromSeconds(60);

    private readonly Dictionary<int, OrderingProbeAnswer> _probeAnswers = [];
    private readonly Dictionary<int, (Guid Probe, long FencedTo)> _fences = [];
    private readonly Guid _probeId = Guid.NewGuid();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _probing;
    private bool _starting; // deciding from the answers: a new layer's start or a rebuild (transfer, then start) is under way
    private int _probeRounds;
    private int _rebuildAttempts;
    private long _rebuildBytes;
    private (Guid Id, byte[] Bytes, long LastAskedMs)? _transferOut; // as a donor: the transfer being pulled

    public async Task OrderingProbe(int from, Guid probe)
    {
        if (_deactivating || (uint)from >= (uint)_copilot.ReplicaCount || from == _id)
        {
            return;
        }

        OrderingProbeAnswer answer;
        if (_probing || _replica is null)
        {
            answer = new OrderingProbeAnswer(_id, 0, false, 0, 0, null);
        }
        else
        {
            // The asker holds nothing: whatever incarnation of it this replica knew is gone, and none of its packets
            // may be handled from now on (its lost self's votes are what the floor stands in for). Fenced durably by
            // raising the incarnation remembered for it, once per asking activation (a repeat must not fence the
            // rebuilt replica out); the rebuilt replica starts above.
            if (!_fences.TryGetValue(from, out var fence) || fence.Probe != probe)
            {
                fence = (probe, _peerEpochs[from] + 1);
                _fences[from] = fence;
            }

            var fenced = Math.Max(_peerEpochs[from], fence.FencedTo);
            RememberPeerEpoch(from, fenced);
            var floor = _replica.FloorContribution(from); // synchronous with the fence: nothing of the lost self after it
            answer = new OrderingProbeAnswer(_id, _epoch, true, fenced, _replica.ExecutedThrough(0) + _replica.ExecutedThrough(1),
                ReplicaCodec.EncodeRecord(new RebuildRecord<ShardReport>(floor)));
            await _log.FlushAsync();
        }

        GrainFactory.GetGrain<ISequencerReplicaGrain>(from).OrderingProbeReply(answer).Ignore();
    }

    public async Task OrderingProbeReply(OrderingProbeAnswer answer)
    {
        if (!_probing || _starting || _deactivating || answer is null || (uint)answer.From >= (uint)_copilot.ReplicaCount || answer.From == _id)
        {
            return;
        }

        _probeAnswers[answer.From] = answer;
        var holders = _probeAnswers.Values.Where(a => a.HasState).ToList();
        if (holders.Count == 0)
        {
            if (_probeAnswers.Count + 1 > _copilot.ReplicaCount / 2)
            {
                LogNewLayer(logger, _id, _probeAnswers.Count);
                _starting = true; // no second start (or rebuild) while this one awaits its log
                try
                {
                    await StartReplicaAsync(CancellationToken.None); // ends the probing once the core exists
                }
                finally
                {
                    _starting = false;
                }
            }

            return;
        }

        if (_probeAnswers.Count < _copilot.ReplicaCount - 1)
        {
            return; // every other replica's floor is needed: any of them may be the one its lost self voted with
        }

        _starting = true;
        var donor = holders.MaxBy(a => a.Executed)!;
        var attempt = ++_rebuildAttempts;
        var started = Stopwatch.GetTimestamp();
        try
        {
            await RebuildFromAsync(donor, attempt);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogRebuildFailed(logger, e, _id, attempt, donor.From, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            // The other answers stay valid (each peer fenced the lost incarnation durably before it answered); the
            // donor is asked again on the next timer tick, and answers again once it serves.
            _probeAnswers.Remove(donor.From);
        }
        finally
        {
            _starting = false;
        }
    }

    public Task<TransferChunk> GetTransferChunkAsync(Guid transfer, int chunk)
    {
        if (_transferOut is not { } t || t.Id != transfer)
        {
            if (chunk != 0)
            {
                throw new InvalidOperationException($"Ordering replica {_id} no longer holds transfer {transfer} (it restarted, gave another since, or the transfer was idle for {TransferIdleTimeout.TotalSeconds:0} s); start again.");
            }

            var state = EnsureStarted();
            var checkpoint = _replica.TakeTransferCheckpoint(); // synchronous with the snapshot: the same point
            t = (transfer, EncodeCheckpoint(_epoch, _peerEpochs, state.Snapshot(), checkpoint.Records), 0);
            LogTransferTaken(logger, _id, transfer, t.Bytes.Length, checkpoint.Records.Count);
        }

        var chunks = Math.Max(1, (t.Bytes.Length + TransferChunkBytes - 1) / TransferChunkBytes);
        if ((uint)chunk >= (uint)chunks)
        {
            throw new ArgumentOutOfRangeException(nameof(chunk), chunk, $"Transfer {transfer} has chunks 0 to {chunks - 1}.");
        }

        _transferOut = t with { LastAskedMs = Environment.TickCount64 }; // kept until idle: a lost answer is asked again
        var offset = chunk * TransferChunkBytes;
        return Task.FromResult(new TransferChunk(chunks, t.Bytes.Length, t.Bytes.AsSpan(offset, Math.Min(TransferChunkBytes, t.Bytes.Length - offset)).ToArray()));
    }

    /// <summary>Forgets a transfer nobody pulled for <see cref="TransferIdleTimeout"/> (its bytes may be large).</summary>
    private void DropIdleTransfer()
    {
        if (_transferOut is { } t && Environment.TickCount64 - t.LastAskedMs > TransferIdleTimeout.TotalMilliseconds)
        {
            _transferOut = null;
        }
    }

    private void StartProbing()
    {
        _probing = true;
        LogProbing(logger, _id);
        ProbeAgain();
    }

    /// <summary>Asks the peers that have not answered (every timer tick; after 20 ticks without a decision, all again).</summary>
    private void ProbeAgain()
    {
        if (_starting)
        {
            return;
        }

        if (++_probeRounds % 20 == 0)
        {
            // A blank answer may be stale (that peer started since). An answer with state stays valid: that peer
            // fenced the lost incarnation durably before it answered, so its floor still bounds what the lost self did.
            foreach (var blank in _probeAnswers.Values.Where(a => !a.HasState).Select(a => a.From).ToList())
            {
                _probeAnswers.Remove(blank);
            }
        }

        for (var peer = 0; peer < _copilot.ReplicaCount; peer++)
        {
            if (peer != _id && !_probeAnswers.ContainsKey(peer) && liveness.IsHomeActive(peer))
            {
                GrainFactory.GetGrain<ISequencerReplicaGrain>(peer).OrderingProbe(_id, _probeId).Ignore();
            }
        }
    }

    /// <summary>Copies <paramref name="donor"/>'s state, persists it with the floor as this replica's checkpoint, and starts from it.</summary>
    private async Task RebuildFromAsync(OrderingProbeAnswer donor, int attempt)
    {
        var started = Stopwatch.GetTimestamp();
        var source = GrainFactory.GetGrain<ISequencerReplicaGrain>(donor.From);
        var transfer = Guid.NewGuid();
        using var pulled = new MemoryStream();
        var chunks = 1;
        for (var chunk = 0; chunk < chunks; chunk++)
        {
            var part = await source.GetTransferChunkAsync(transfer, chunk).WaitAsync(TransferChunkTimeout);
            chunks = part.Chunks;
            pulled.Write(part.Bytes);
            if (!_probing || _deactivating)
            {
                return;
            }
        }

        var bytes = pulled.ToArray();
        LogTransferred(logger, _id, attempt, donor.From, bytes.Length, chunks, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);

        var (_, _, snapshot, records) = ReadCheckpoint(bytes);
        var copied = new ReplicaCheckpoint<ShardReport>(
            records[0] as CheckpointRecord<ShardReport> ?? throw new InvalidDataException($"Replica {donor.From}'s transfer checkpoint does not start with its header."), records);
        var floors = _probeAnswers.Values.Where(a => a.Floor is not null)
            .Select(a => ReplicaCodec.DecodeRecord(a.Floor) is RebuildRecord<ShardReport> r ? r.Floor : throw new InvalidDataException($"Replica {a.From} answered a probe with a record that is not a rebuild floor."));
        var floor = RebuildFloor.Max(floors);
        var knownEpoch = _probeAnswers.Values.Max(a => a.KnownEpochOfAsker);
        var peerEpochs = new long[_copilot.ReplicaCount];
        foreach (var a in _probeAnswers.Values)
        {
            peerEpochs[a.From] = a.Epoch;
        }

        // The checkpoint carries an incarnation at least as high as any the peers know of this replica: the next
        // (written by StartReplicaAsync) is above, so they take its packets again.
        var checkpoint = EncodeCheckpoint(knownEpoch, peerEpochs, snapshot, Replica<ShardReport>.RebuildRecords(copied, floor));
        AppendCheckpoint(checkpoint);
        await _log.FlushAsync();
        _rebuildBytes = bytes.Length;
        _lastCheckpointBytes = checkpoint.Length;
        LogRebuilt(logger, _id, donor.From, attempt, records.Count, snapshot.Windows.Length, knownEpoch + 1, floor.ToString(), (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        await StartReplicaAsync(CancellationToken.None); // ends the probing once the core exists
    }

    /// <summary>The sequencer state, or a clear error while this replica has none yet.</summary>
    private SequencerState EnsureStarted() =>
        _probing || _state is null
            ? throw new InvalidOperationException($"Ordering replica {_id} started with no state and is probing its peers or rebuilding from them; ask another replica.")
            : _state;

    /// <summary>
    /// The sequencer state once this replica has one: a query that arrives while it probes (a new ordering layer's
    /// replicas answer each other within milliseconds) waits up to 5 s, then fails clearly (a rebuild takes longer).
    /// </summary>
    private async Task<SequencerState> StartedStateAsync()
    {
        if (_probing || _state is null)
        {
            await StartedWithinAsync(TimeSpan.FromSeconds(5)); // if not, EnsureStarted names the reason
        }

        return EnsureStarted();
    }

    /// <summary>Waits until this replica has started (false if it has not within <paramref name="patience"/>).</summary>
    private async Task<bool> StartedWithinAsync(TimeSpan patience)
    {
        try
        {
            await _started.Task.WaitAsync(patience);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private ReplicaStatus ProbingStatus() => new(
        _id, 0, siloDetails.SiloAddress.ToString(), _copilot.Mode.ToString(), _copilot.ReplicaCount, -1, -1, false, false, 0, 0, 0, 0, 0, 0, 0, 0, _staleDropped, _activatedAt, _wakeups,
        $"probing: answers from [{string.Join(", ", _probeAnswers.Values.Select(a => $"{a.From}{(a.HasState ? " holds state" : " blank")}"))}]",
        Role: _starting ? "Rebuilding" : "Probing");

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sequencer replica {Replica} has no state on disk: probing its peers to learn whether the ordering layer is new or this replica lost its disk")]
    private static partial void LogProbing(ILogger logger, int replica);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica}: a new ordering layer ({Answers} other replicas blank too); starting fresh")]
    private static partial void LogNewLayer(ILogger logger, int replica, int answers);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sequencer replica {Replica} rebuilt from replica {Donor} (attempt {Attempt}): {Records} committed-entry records, {Windows} windows, incarnation {Epoch}, floor {Floor}, {Millis} ms; it abstains on entries its lost self may have voted on")]
    private static partial void LogRebuilt(ILogger logger, int replica, int donor, int attempt, int records, int windows, long epoch, string floor, long millis);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica}, rebuild attempt {Attempt}: pulled {Bytes} bytes in {Chunks} chunks from replica {Donor} in {Millis} ms")]
    private static partial void LogTransferred(ILogger logger, int replica, int attempt, int donor, int bytes, int chunks, long millis);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica}: took transfer checkpoint {Transfer} for a rebuilding replica ({Bytes} bytes, {Records} records)")]
    private static partial void LogTransferTaken(ILogger logger, int replica, Guid transfer, int bytes, int records);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sequencer replica {Replica}: rebuild attempt {Attempt} from replica {Donor} failed after {Millis} ms; probing that donor again")]
    private static partial void LogRebuildFailed(ILogger logger, Exception e, int replica, int attempt, int donor, long millis);
}
