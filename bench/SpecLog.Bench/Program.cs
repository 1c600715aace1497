using SpecLog.Bench.Scenarios;
using SpecLog.Bench.Workloads;

namespace SpecLog.Bench;

/// <summary>Entry point: <c>dotnet run -c Release --project bench/SpecLog.Bench -- &lt;scenario&gt; [options]</c>.</summary>
public static class Program
{
    /// <summary>Every scenario the tool knows; add new ones here.</summary>
    private static readonly IScenario[] s_scenarios =
    [
        new StorageScenario(),
        new OrderingScenario(),
        new FloorsScenario(),
        new PeersScenario(),
        new E2eScenario(),
        new E2eBelfastScenario(),
        new ShardsScenario(),
        new AnatomyScenario(),
        new BurstScenario(),
        new RateChangeScenario(),
        new WindowScenario(),
        new HeadlineScenario(),
        new FailoverScenario(),
        new ElasticScenario(),
        new RecoveryScenario(),
        new SamplesScenario(),
        new FilterScenario(),
    ];

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            PrintUsage();
            return args.Length == 0 ? 1 : 0;
        }

        IScenario? scenario = s_scenarios.FirstOrDefault(s => string.Equals(s.Name, args[0], StringComparison.OrdinalIgnoreCase));
        if (scenario is null)
        {
            Console.Error.WriteLine($"Unknown scenario '{args[0]}'.");
            PrintUsage();
            return 1;
        }

        try
        {
            var parsed = BenchArgs.Parse(args.AsSpan(1));
            if (scenario.UsesLog && parsed.Get("no-warmup") is null)
            {
                await JitWarmup.RunAsync();
            }

            return await scenario.RunAsync(parsed);
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }
    }

    private static void PrintUsage()
    {
        Console.WriteLine("usage: SpecLog.Bench <scenario> [--option value ...] [--no-warmup]");
        Console.WriteLine("  scenarios that run the log first run it unmeasured for a few seconds (JIT tier-up); --no-warmup skips that");
        foreach (IScenario scenario in s_scenarios)
        {
            Console.WriteLine($"  {scenario.Name,-12} {scenario.Description}");
        }
    }
}
