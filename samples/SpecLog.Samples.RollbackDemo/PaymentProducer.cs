using System.Diagnostics;
using SpecLog.Client;
using SpecLog.Samples.FraudDetection;

namespace SpecLog.Samples.RollbackDemo;

/// <summary>
/// Appends the fraud sample's payments at a fixed rate (open loop, shards in turn) until stopped, through failures:
/// an append the log refuses or cannot take (its shard failed, no answer before the retry deadline) is counted and
/// the stream goes on; the consumer follows whatever the log holds.
/// </summary>
internal sealed class PaymentProducer
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private readonly List<Task> _inFlight = [];
    private long _acknowledged;
    private long _failed;
    private long _lastGsn = -1;

    public PaymentProducer(SpecLogClient log, double rate) => _run = Task.Run(() => RunAsync(log, rate));

    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>The highest GSN acknowledged so far (its cut is committed).</summary>
    public long LastGsn => Interlocked.Read(ref _lastGsn);

    /// <summary>Stops appending, waits for the appends in flight and returns the highest GSN acknowledged.</summary>
    public async Task<long> StopAsync()
    {
        await _stop.CancelAsync();
        await _run;
        Task[] left;
        lock (_inFlight)
        {
            left = [.. _inFlight];
        }

        await Task.WhenAll(left);
        _stop.Dispose();
        return Interlocked.Read(ref _lastGsn);
    }

    private async Task RunAsync(SpecLogClient log, double rate)
    {
        var started = Stopwatch.GetTimestamp();
        for (long i = 0; !_stop.IsCancellationRequested; i++)
        {
            var wait = started + (long)(i / rate * Stopwatch.Frequency) - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            var payment = Payment.Generate(i, LatencyHistogram.NowMicros()).Encode();
            var append = AppendAsync(log, payment);
            lock (_inFlight)
            {
                _inFlight.RemoveAll(t => t.IsCompleted);
                _inFlight.Add(append);
            }
        }
    }

    private async Task AppendAsync(SpecLogClient log, byte[] payment)
    {
        try
        {
            var gsn = await log.AppendAsync(payment);
            Interlocked.Increment(ref _acknowledged);
            long seen;
            while ((seen = Interlocked.Read(ref _lastGsn)) < gsn && Interlocked.CompareExchange(ref _lastGsn, gsn, seen) != seen)
            {
            }
        }
        catch (Exception e) when (e is ShardFailedException or ShardRemovedException or TimeoutException or AppendOutcomeUnknownException or OrleansException)
        {
            Interlocked.Increment(ref _failed);
        }
    }
}
