using System.Text;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>Test payloads: every record a test appends starts with this tag, so anything else in a stream is a bug.</summary>
internal static class Payload
{
    public const string Tag = "T|";

    public static byte[] Make(string test, int producer, int i) => Encoding.UTF8.GetBytes($"{Tag}{test}|{producer}|{i}");

    public static string Text(ReadOnlyMemory<byte> payload) => Encoding.UTF8.GetString(payload.Span);
}

/// <summary>Consumes a subscription in the background and keeps what it saw, in order.</summary>
internal sealed class LogProbe : IAsyncDisposable
{
    private readonly CancellationTokenSource _cts;
    private readonly Task _pump;
    private readonly object _gate = new();
    private readonly List<SpeculativeRecord> _records = [];
    private readonly List<ConfirmedRange> _confirmations = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LogProbe(IAsyncEnumerable<SpecLogEvent> events, CancellationToken cancellationToken)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _pump = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in events.WithCancellation(_cts.Token))
                {
                    lock (_gate)
                    {
                        switch (e)
                        {
                            case SpeculativeRecord r:
                                _records.Add(r);
                                break;
                            case ConfirmedRange c:
                                _confirmations.Add(c);
                                break;
                        }

                        _changed.TrySetResult();
                        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    }
                }
            }
            catch (OperationCanceledException) when (_cts.IsCancellationRequested)
            {
            }
        });
    }

    public List<SpeculativeRecord> Records
    {
        get
        {
            lock (_gate)
            {
                return [.. _records];
            }
        }
    }

    public List<ConfirmedRange> Confirmations
    {
        get
        {
            lock (_gate)
            {
                return [.. _confirmations];
            }
        }
    }

    public long ConfirmedUpTo
    {
        get
        {
            lock (_gate)
            {
                return _confirmations.Count == 0 ? 0 : _confirmations[^1].ToGsn;
            }
        }
    }

    /// <summary>Waits (event driven) until <paramref name="condition"/> holds, or fails after <paramref name="timeout"/>.</summary>
    public async Task WaitUntilAsync(Func<LogProbe, bool> condition, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                changed = _changed.Task;
            }

            if (condition(this))
            {
                return;
            }

            if (_pump.IsCompleted)
            {
                await _pump; // surfaces the subscription's exception
                Assert.Fail($"The subscription ended before: {what}");
            }

            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                Assert.Fail($"Timed out after {timeout} waiting for: {what}. Saw {Records.Count} records, confirmed up to {ConfirmedUpTo}.");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        await _pump;
        _cts.Dispose();
    }
}
