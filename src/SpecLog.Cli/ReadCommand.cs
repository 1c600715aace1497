using System.CommandLine;

namespace SpecLog.Cli;

/// <summary><c>speclog read</c>: committed records at a GSN or in a range.</summary>
internal static class ReadCommand
{
    public static Command Create(Func<ParseResult, CancellationToken, Task<LogConnection>> connect)
    {
        var gsn = new Argument<long>("gsn") { Description = "The GSN (or the first of the range with --to)" };
        var to = new Option<long?>("--to") { Description = "One past the last GSN of the range" };
        var command = new Command("read", "Committed records: one GSN, or [gsn, --to).") { gsn, to };
        command.SetAction((parse, ct) => CliRunner.RunAsync(parse, connect, ct, async c =>
        {
            var from = parse.GetValue(gsn);
            if (parse.GetValue(to) is { } end)
            {
                var records = await c.Log.ReadRangeAsync(from, end, ct);
                foreach (var r in records)
                {
                    Console.WriteLine($"{r.Gsn} shard {r.Shard} {Payloads.TagOf(r.Tag)}{Payloads.Show(r.Payload.Span)}");
                }

                Console.WriteLine($"{records.Count} records in [{from}, {end})");
                return 0;
            }

            var one = await c.Log.ReadAsync(from, ct);
            Console.WriteLine(one is null ? $"{from} is a no-op (no record)" : $"{one.Gsn} shard {one.Shard} {Payloads.TagOf(one.Tag)}{Payloads.Show(one.Payload.Span)}");
            return 0;
        }));
        return command;
    }
}
