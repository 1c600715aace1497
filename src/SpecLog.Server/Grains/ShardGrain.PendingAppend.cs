using System.Diagnostics;

namespace SpecLog.Server.Grains;

internal sealed partial class ShardGrain
{
    /// <summary>An append call's new records (slots [<see cref="FirstSlot"/>, +<see cref="Count"/>)) waiting for their cut's commit.</summary>
    private sealed class PendingAppend(long firstSlot, int count, long receivedMicros, Activity? trace = null)
    {
        public long ReceivedMicros { get; } = receivedMicros;

        private readonly TaskCompletionSource<long[]> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long FirstSlot { get; } = firstSlot;

        public int Count { get; } = count;

        public long EndSlot => FirstSlot + Count;

        public Task<long[]> Task => _tcs.Task;

        /// <summary>The call's span (<see cref="SpecLogTracing.Spans.ShardAppend"/>), when traced; null otherwise.</summary>
        public Activity? Trace { get; } = trace;

        /// <summary>The call's wait for ordering (<see cref="SpecLogTracing.Spans.ShardOrder"/>), from the report completing its cut.</summary>
        public Activity? Order { get; set; }

        /// <summary>Which stages the trace has recorded (<see cref="TraceStage"/>).</summary>
        public TraceStage Traced { get; set; }

        public void Complete(long[] gsns) => _tcs.TrySetResult(gsns);

        public void Fail(Exception e)
        {
            if (_tcs.TrySetException(e) && Order is { } order)
            {
                SpecLogTracing.Failed(order, e);
                SpecLogTracing.StopDetached(order);
            }
        }
    }

    /// <summary>The stages of a traced append already recorded as events.</summary>
    [Flags]
    private enum TraceStage
    {
        None = 0,
        Durable = 1,
        Speculative = 2,
        Reported = 4,
    }
}
