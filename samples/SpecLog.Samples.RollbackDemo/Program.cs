using System.Globalization;
using SpecLog.Samples.RollbackDemo;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine("""
        The rollback demonstration: the fraud-detection app on a three-silo cluster (separate processes, Azure Table
        membership on a local Azurite) while the silo holding shard 2 is killed with kill -9. It shows the range of
        positions the consumer got speculatively that the log voids, the consumer's rollback, and that the verdicts and
        alerts it released equal those of a fresh consumer replaying the confirmed log. Installs Azurite with npm on
        first use (into .tools/azurite).

        Usage: dotnet run -c Release --project samples/SpecLog.Samples.RollbackDemo -- [options]

          --rate <n>               payments per second (default 1000)
          --before <seconds>       load before the kill (default 4)
          --after <seconds>        load after shard 2 is back (default 2)
          --attempts <n>           kills to try until one leaves records to roll back (default 5)
          --failure-timeout-ms <n> silence after which a shard is declared failed (default 1000)
          --cut-ms <n>             the ordering interval T_ord (default 50; the log's default is 1): a shard reports a
                                   cut once it is full, so the longer the cut, the more records a kill catches delivered
                                   but not yet reported
          --verbose                print the consumer's progress every second

        Exit code 0: rolled back, and the outputs equal the replay's; 1: they differ; 2: no kill left anything to roll back.
        """);
    return 0;
}

double Number(string name, double fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? double.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}

var options = new DemoOptions(
    Number("--rate", 1000),
    TimeSpan.FromSeconds(Number("--before", 4)),
    TimeSpan.FromSeconds(Number("--after", 2)),
    (int)Number("--attempts", 5),
    TimeSpan.FromMilliseconds(Number("--failure-timeout-ms", 1000)),
    TimeSpan.FromMilliseconds(Number("--cut-ms", 50)),
    args.Contains("--verbose"));
using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
return await RollbackDemo.RunAsync(options, cts.Token);
