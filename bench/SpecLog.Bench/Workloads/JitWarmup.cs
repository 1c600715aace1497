using System.Diagnostics;
using SpecLog.FixAnte;

namespace SpecLog.Bench.Workloads;

/// <summary>
/// Runs the log's append, delivery and ordering paths (Fix-Ante and Scalog mode) for a few seconds before a scenario
/// measures anything, unreported, so the JIT has tiered the hot code up as in a silo that has been running a while.
/// Without it the first measured run of a process shares the cores with background recompilation (a third of a core
/// in the first seconds on the 2-core VM) and comes out markedly slower than the later ones.
/// </summary>
internal static class JitWarmup
{
    public static async Task RunAsync()
    {
        var started = Stopwatch.StartNew();
        Console.WriteLine("warm-up: running the log unmeasured for a few seconds (--no-warmup skips this)...");
        foreach (var mode in new[] { OrderingMode.FixAnte, OrderingMode.Scalog, OrderingMode.FixAnte })
        {
            await ShardLoad.RunAsync(new ShardLoadSpec
            {
                Shards = 4,
                Rate = (_, _) => 2000,
                Warmup = 0.5,
                Seconds = 1.5,
                SampleSeconds = 0.5,
                Ordering = o => o.Mode = mode,
            });
        }

        Console.WriteLine($"warm-up: done in {started.Elapsed.TotalSeconds:F0} s");
    }
}
