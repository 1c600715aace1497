using SpecLog.Client;

namespace SpecLog.Silo.Tests;

/// <summary>Follows the whole log and records what it was told: records in delivery order, the confirmed end, mis-speculation notices.</summary>
internal sealed class SubscriptionRecorder
{
    private readonly Lock _lock = new();
    private readonly List<(long Gsn, byte[] Payload)> _records = [];
    private readonly List<MisSpeculatedRange> _misSpeculated = [];
    private long _confirmedEnd;
    private Exception? _failure;

    public long ConfirmedEnd => Volatile.Read(ref _confirmedEnd);

    /// <summary>Subscribes from <paramref name="fromGsn"/> until cancelled or until <paramref name="stop"/> says so.</summary>
    public async Task RunAsync(SpecLogClient log, long fromGsn, Func<SubscriptionRecorder, bool>? stop, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var e in log.SubscribeAsync(fromGsn, cancellationToken))
            {
                lock (_lock)
                {
                    switch (e)
                    {
                        case SpeculativeRecord r:
                            _records.Add((r.Gsn, r.Payload.ToArray()));
                            break;
                        case ConfirmedRange c:
                            Volatile.Write(ref _confirmedEnd, Math.Max(_confirmedEnd, c.ToGsn));
                            break;
                        case MisSpeculatedRange m:
                            _misSpeculated.Add(m);
                            break;
                    }
                }

                if (stop?.Invoke(this) == true)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            _failure = e;
            throw;
        }
        catch (Exception)
        {
            // The silo was killed under the subscription: expected.
        }
    }

    /// <summary>The highest GSN delivered so far (-1 if none).</summary>
    public long LastGsn
    {
        get
        {
            lock (_lock)
            {
                return _records.Count == 0 ? -1 : _records[^1].Gsn;
            }
        }
    }

    public Exception? Failure => _failure;

    public (List<(long Gsn, byte[] Payload)> Records, long ConfirmedEnd, List<MisSpeculatedRange> MisSpeculated) Snapshot()
    {
        lock (_lock)
        {
            return ([.. _records], _confirmedEnd, [.. _misSpeculated]);
        }
    }
}
