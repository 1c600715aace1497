using System.Diagnostics;
using SpecLog.Copilot;
using SpecLog.FixAnte;
using SpecLog.Server.Diagnostics;

namespace SpecLog.Server.Grains;

/// <summary>
/// How long this replica takes to order a report: the stage metrics (transit, ordering) and, for a traced report, its
/// <see cref="SpecLogTracing.Spans.Ordering"/> span from submission here until this replica executed it.
/// </summary>
internal sealed partial class SequencerReplicaGrain
{
    /// <summary>At most this many commands are timed at once; past it the oldest are given up (another pilot ordered them).</summary>
    private const int MaxTimedCommands = 65_536;

    /// <summary>At most this many traced commands wait for their execution at once (their spans end, marked abandoned, past it).</summary>
    private const int MaxTracedCommands = 4_096;

    private readonly Dictionary<CommandId, long> _submittedAt = [];
    private Dictionary<CommandId, Activity>? _tracedCommands;

    /// <summary>A report submitted to this pilot as command <paramref name="id"/>.</summary>
    private void OnSubmitted(CommandId id, in ShardReport report)
    {
        if (OrderingTracing.Start(report, _id) is { } span)
        {
            _tracedCommands ??= [];
            if (_tracedCommands.Count >= MaxTracedCommands)
            {
                AbandonTracedCommands();
            }

            if (!_tracedCommands.TryAdd(id, span))
            {
                SpecLogTracing.StopDetached(span); // a retransmission of a command already timed here
            }
        }

        if (SpecLogMetrics.StageDuration.Enabled)
        {
            var now = SpecLogMetrics.NowMicros();
            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ReportTransit, report.TimestampMicros, now);
            if (_submittedAt.Count > MaxTimedCommands)
            {
                _submittedAt.Clear(); // commands that never executed here (another pilot ordered them)
            }

            _submittedAt.TryAdd(id, now);
        }
    }

    /// <summary>Ends the spans of traced commands still waiting for their execution here, marked abandoned (deactivation, too many waiting).</summary>
    private void AbandonTracedCommands()
    {
        if (_tracedCommands is null)
        {
            return;
        }

        foreach (var abandoned in _tracedCommands.Values)
        {
            abandoned.SetTag(SpecLogTracing.Tags.Abandoned, true);
            SpecLogTracing.StopDetached(abandoned);
        }

        _tracedCommands.Clear();
    }

    /// <summary>Command <paramref name="id"/> was executed here (ordered and committed).</summary>
    private void OnExecuted(CommandId id)
    {
        if (_submittedAt.Remove(id, out var submitted))
        {
            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.Ordering, submitted, SpecLogMetrics.NowMicros());
        }

        if (_tracedCommands is not null && _tracedCommands.Remove(id, out var span))
        {
            OrderingTracing.Executed(span, _state.CommittedCut);
        }
    }
}
