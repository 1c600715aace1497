using System.Text;
using SpecLog.Client;
using SpecLog.Consumer;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// A small stateful application for consumer tests: per key, a running total of the amounts in records
/// <c>"key:amount"</c>; every record whose amount takes its key's total past a multiple of 100 emits an alert naming
/// the total, so outputs depend on the state and a wrong rollback shows. Other payloads count under key "?".
/// </summary>
internal static class ConsumerTestApp
{
    public static byte[] Record(string key, int amount) => Encoding.UTF8.GetBytes($"{key}:{amount}");

    public static Dictionary<string, long> NewState() => [];

    public static Dictionary<string, long> Apply(Dictionary<string, long> totals, ConsumedRecord record, OutputBuffer<string> outputs)
    {
        var text = Encoding.UTF8.GetString(record.Payload.Span);
        var colon = text.LastIndexOf(':');
        var (key, amount) = colon > 0 && int.TryParse(text.AsSpan(colon + 1), out var a) ? (text[..colon], a) : ("?", 1);
        var before = totals.GetValueOrDefault(key);
        var after = before + amount;
        totals[key] = after;
        if (after / 100 > before / 100)
        {
            outputs.Emit($"{key} passed {after / 100 * 100} at {after} (GSN {record.Gsn})");
        }

        return totals;
    }

    /// <summary>
    /// What a consumer must release over the committed log below <paramref name="toGsn"/>: GSN-ordered, one state for
    /// the whole log; per shard, one state per shard.
    /// </summary>
    public static async Task<List<(long Gsn, int Index, string Output)>> ExpectedAsync(SpecLogClient client, long fromGsn, long toGsn, bool perShard, CancellationToken ct)
    {
        var records = await client.ReadRangeAsync(fromGsn, toGsn, ct);
        var states = new Dictionary<int, Dictionary<string, long>>();
        var outputs = new List<(long, int, string)>();
        var buffer = new OutputBuffer<string>();
        foreach (var r in records)
        {
            var key = perShard ? r.Shard : -1;
            var state = states.TryGetValue(key, out var s) ? s : states[key] = NewState();
            buffer.Clear();
            Apply(state, new ConsumedRecord(r.Gsn, r.Shard, r.Payload), buffer);
            for (var i = 0; i < buffer.Count; i++)
            {
                outputs.Add((r.Gsn, i, buffer[i]));
            }
        }

        return outputs;
    }
}

/// <summary>
/// A sink that keeps every output it was given, remembers the last per shard (so a restarted consumer skips what it
/// holds), notices duplicates, and lets a test await a count.
/// </summary>
internal sealed class RecordingSink : IResumableOutputSink<string>
{
    private readonly object _gate = new();
    private readonly List<ReleasedOutput<string>> _outputs = [];
    private readonly HashSet<(long, int)> _seen = [];
    private readonly List<TaskCompletionSource> _waiters = [];

    public int Duplicates { get; private set; }

    public List<ReleasedOutput<string>> Outputs
    {
        get
        {
            lock (_gate)
            {
                return [.. _outputs];
            }
        }
    }

    public ValueTask ReleaseAsync(IReadOnlyList<ReleasedOutput<string>> outputs, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            foreach (var o in outputs)
            {
                if (!_seen.Add((o.Gsn, o.Index)))
                {
                    Duplicates++;
                }

                _outputs.Add(o);
            }

            foreach (var w in _waiters)
            {
                w.TrySetResult();
            }

            _waiters.Clear();
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyDictionary<int, OutputId>> GetLastReleasedAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            IReadOnlyDictionary<int, OutputId> last = _outputs.GroupBy(o => o.Shard).ToDictionary(g => g.Key, g => g.Select(o => new OutputId(o.Gsn, o.Index)).Max());
            return ValueTask.FromResult(last);
        }
    }

    /// <summary>Completes once <paramref name="done"/> holds for the outputs taken so far.</summary>
    public async Task WaitForAsync(Func<List<ReleasedOutput<string>>, bool> done, TimeSpan patience, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(patience);
        while (true)
        {
            Task next;
            lock (_gate)
            {
                if (done(_outputs))
                {
                    return;
                }

                var w = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add(w);
                next = w.Task;
            }

            try
            {
                await next.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"The sink holds {Outputs.Count} outputs after {patience.TotalSeconds} s, and not yet what the test waits for.");
            }
        }
    }
}
