using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace SpecLog.Cli;

/// <summary><c>speclog status</c>: the log, its shards and its ordering replicas, once or live (<c>--watch</c>).</summary>
internal static class StatusCommand
{
    public static Command Create(Func<ParseResult, CancellationToken, Task<LogConnection>> connect)
    {
        var watch = new Option<bool>("--watch") { Description = "Redraw every --interval until Ctrl+C" };
        var interval = new Option<double>("--interval") { Description = "Seconds between redraws with --watch", DefaultValueFactory = _ => 1 };
        var command = new Command("status", "Shards, replicas, windows, quotas, no-op share, ordering replicas and their views.") { watch, interval };
        command.SetAction((parse, ct) => CliRunner.RunAsync(parse, connect, ct, async c =>
        {
            if (!parse.GetValue(watch))
            {
                AnsiConsole.Write(await RenderAsync(c));
                return 0;
            }

            var every = TimeSpan.FromSeconds(Math.Max(0.1, parse.GetValue(interval)));
            await AnsiConsole.Live(await RenderAsync(c)).StartAsync(async live =>
            {
                while (!ct.IsCancellationRequested)
                {
                    await Task.Delay(every, ct);
                    live.UpdateTarget(await RenderAsync(c));
                }
            });
            return 0;
        }));
        return command;
    }

    /// <summary>A silo address without Orleans' "S" prefix and generation: host:port.</summary>
    private static string ShortSilo(string silo)
    {
        var s = silo.StartsWith('S') ? silo[1..] : silo;
        var last = s.LastIndexOf(':');
        return last > 0 && s.IndexOf(':') != last ? s[..last] : s;
    }

    /// <summary>One snapshot of everything, as tables.</summary>
    internal static async Task<IRenderable> RenderAsync(LogConnection c)
    {
        var sequencer = await c.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync();
        var log = new Table().Title(Markup.Escape($"SpecLog log ({c.Description})")).AddColumns("", "");
        log.AddRow("ordering", Markup.Escape($"{sequencer.Mode}, {sequencer.Replication}{(sequencer.OrderingReplicas > 0 ? $" with {sequencer.OrderingReplicas} replicas" : "")}"));
        log.AddRow("shards", Markup.Escape($"{sequencer.ActiveShards.Length} active of {sequencer.ShardCount}, {sequencer.ShardReplicas} replica(s) each"));
        log.AddRow("committed", $"GSN {sequencer.CommittedGsn:N0}, cut {sequencer.CommittedCut:N0}");
        var w = sequencer.CurrentWindow;
        log.AddRow("windows", Markup.Escape(w is null ? $"{sequencer.Windows}" : $"{sequencer.Windows} (latest {w.Window}: quotas [{string.Join(", ", w.Quotas)}] from GSN {w.StartGsn:N0})"));
        log.AddRow("reports / lag-fixes", $"{sequencer.ReportsApplied:N0} / {sequencer.LagFixesIssued:N0}");
        log.AddRow("trimmed below", $"GSN {sequencer.TrimmedBelowGsn:N0}");
        foreach (var (name, set) in new[] { ("grounded", sequencer.GroundedShards), ("joining", sequencer.JoiningShards), ("leaving", sequencer.LeavingShards), ("departed", sequencer.DepartedShards), ("failed", sequencer.FailedShards) })
        {
            if (set is { Length: > 0 })
            {
                log.AddRow(name, Markup.Escape(string.Join(", ", set)));
            }
        }

        var shards = new Table().Title("Shards").AddColumns("shard", "leader", "epoch", "durable", "records", "no-ops", "committed", "quota", "pending", "subs", "silo");
        for (var s = 0; s < sequencer.ShardCount; s++)
        {
            ShardStatus? lead = null;
            for (var r = 0; r < Math.Max(1, sequencer.ShardReplicas) && lead is null; r++)
            {
                try
                {
                    var st = await c.Grains.GetGrain<IShardGrain>(ShardKeys.Of(s, r)).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(2));
                    if (st.Role is "Leader" or "Single" || sequencer.ShardReplicas <= 1)
                    {
                        lead = st;
                    }
                }
                catch (Exception e) when (e is TimeoutException or OrleansException)
                {
                    // That replica's node is down: try the next.
                }
            }

            if (lead is null)
            {
                shards.AddRow(s.ToString(CultureInfo.InvariantCulture), "[red]none answering[/]", "", "", "", "", "", "", "", "", "");
                continue;
            }

            var noOps = lead.DurableSlots == 0 ? 0 : (double)lead.NoOpSlots / lead.DurableSlots;
            shards.AddRow(
                s.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(lead.Departed ? "departed" : $"{lead.Replica} ({lead.Role})"),
                lead.Epoch.ToString(CultureInfo.InvariantCulture),
                lead.DurableSlots.ToString("N0", CultureInfo.InvariantCulture),
                lead.DurableRecords.ToString("N0", CultureInfo.InvariantCulture),
                noOps.ToString("P1", CultureInfo.InvariantCulture),
                lead.CommittedSlots.ToString("N0", CultureInfo.InvariantCulture),
                lead.CurrentQuota.ToString(CultureInfo.InvariantCulture),
                lead.PendingAppends.ToString(CultureInfo.InvariantCulture),
                lead.Subscribers.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(ShortSilo(lead.Silo)));
        }

        var parts = new List<IRenderable> { log, shards };
        if (sequencer.OrderingReplicas > 0)
        {
            var replicas = new Table().Title("Ordering replicas").AddColumns("replica", "silo", "pilots", "epoch", "executed", "fast commits", "slow paths", "takeovers", "views won");
            for (var r = 0; r < sequencer.OrderingReplicas; r++)
            {
                try
                {
                    var st = await c.Grains.GetGrain<ISequencerReplicaGrain>(r).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(2));
                    replicas.AddRow(
                        r.ToString(CultureInfo.InvariantCulture), Markup.Escape(ShortSilo(st.Silo)), $"{st.Pilot0}, {st.Pilot1}", st.Epoch.ToString(CultureInfo.InvariantCulture),
                        st.CommandsExecuted.ToString("N0", CultureInfo.InvariantCulture), st.FastCommits.ToString("N0", CultureInfo.InvariantCulture),
                        st.SlowPaths.ToString("N0", CultureInfo.InvariantCulture), st.Takeovers.ToString(CultureInfo.InvariantCulture), st.ViewsWon.ToString(CultureInfo.InvariantCulture));
                }
                catch (Exception e) when (e is TimeoutException or OrleansException)
                {
                    replicas.AddRow(r.ToString(CultureInfo.InvariantCulture), "[red]not answering[/]", "", "", "", "", "", "", "");
                }
            }

            parts.Add(replicas);
        }

        return new Rows(parts);
    }
}
