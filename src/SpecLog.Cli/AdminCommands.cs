using System.CommandLine;

namespace SpecLog.Cli;

/// <summary><c>speclog trim</c> and <c>speclog shards add|remove</c>.</summary>
internal static class AdminCommands
{
    public static Command Trim(Func<ParseResult, CancellationToken, Task<LogConnection>> connect)
    {
        var gsn = new Argument<long>("gsn") { Description = "Every record below this committed GSN is removed" };
        var command = new Command("trim", "Removes every record below a committed GSN from all shard replicas.") { gsn };
        command.SetAction((parse, ct) => CliRunner.RunAsync(parse, connect, ct, async c =>
        {
            var point = parse.GetValue(gsn);
            var shards = await c.Log.TrimAsync(point, ct);
            Console.WriteLine($"trimmed below GSN {point} on shards {string.Join(", ", shards)}");
            return 0;
        }));
        return command;
    }

    public static Command Shards(Func<ParseResult, CancellationToken, Task<LogConnection>> connect)
    {
        var add = new Command("add", "Adds a shard while the log serves; it gets slots from the next window.");
        add.SetAction((parse, ct) => CliRunner.RunAsync(parse, connect, ct, async c =>
        {
            var change = await c.Log.AddShardAsync(cancellationToken: ct);
            Console.WriteLine($"added shard {change.Shard}: slots from window {change.Window} (GSN {change.StartGsn})");
            return 0;
        }));

        var shard = new Argument<int>("shard") { Description = "The shard to remove" };
        var remove = new Command("remove", "Removes a shard: it finishes its window, its records stay readable.") { shard };
        remove.SetAction((parse, ct) => CliRunner.RunAsync(parse, connect, ct, async c =>
        {
            var change = await c.Log.RemoveShardAsync(parse.GetValue(shard), cancellationToken: ct);
            Console.WriteLine($"removed shard {change.Shard}: no slots from window {change.Window} (GSN {change.StartGsn})");
            return 0;
        }));

        return new Command("shards", "Adds or removes shards.") { add, remove };
    }
}
