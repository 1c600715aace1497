using System.CommandLine;
using SpecLog.Client;

namespace SpecLog.Cli;

/// <summary><c>speclog tail</c>: speculative records and confirmations as they arrive.</summary>
internal static class TailCommand
{
    public static Command Create(Func<ParseResult, CancellationToken, Task<LogConnection>> connect)
    {
        var from = new Option<long>("--from") { Description = "First GSN (default: the log's committed end, so only new records)", DefaultValueFactory = _ => -1 };
        var shard = new Option<int?>("--shard") { Description = "Only this shard's records (each the moment it is durable)" };
        var contains = new Option<string?>("--contains") { Description = "Only records whose text contains this" };
        var tags = new Option<string[]>("--tag") { Description = "Only records with this tag, filtered at the shards (repeatable)", AllowMultipleArgumentsPerToken = false };
        var prefixes = new Option<string[]>("--tag-prefix") { Description = "Only records whose tag starts with this, filtered at the shards (repeatable)" };
        var count = new Option<long>("--count") { Description = "Stop after this many records (default: until Ctrl+C)", DefaultValueFactory = _ => long.MaxValue };
        var command = new Command("tail", "Speculative records and confirmations as they arrive, in GSN order (or one shard's).") { from, shard, contains, tags, prefixes, count };
        command.SetAction((parse, ct) => CliRunner.RunAsync(parse, connect, ct, async c =>
        {
            var start = parse.GetValue(from);
            if (start < 0)
            {
                start = (await c.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync()).CommittedGsn;
            }

            var filter = parse.GetValue(contains);
            var left = parse.GetValue(count);
            var wanted = parse.GetValue(tags) ?? [];
            var starts = parse.GetValue(prefixes) ?? [];
            RecordFilter? tagFilter = wanted.Length + starts.Length > 0 ? new RecordFilter(wanted, starts) : null;
            tagFilter?.Validate();
            var events = parse.GetValue(shard) is { } s
                ? c.Log.SubscribeShardsAsync(new Dictionary<int, long> { [s] = start }, tagFilter, ct)
                : tagFilter is null ? c.Log.SubscribeAsync(start, ct) : c.Log.SubscribeAsync(tagFilter, start, ct);
            await foreach (var e in events)
            {
                switch (e)
                {
                    case SpeculativeRecord r:
                        var text = Payloads.Show(r.Payload.Span);
                        if (filter is null || text.Contains(filter, StringComparison.Ordinal))
                        {
                            Console.WriteLine($"spec  {r.Gsn} shard {r.Shard} {Payloads.TagOf(r.Tag)}{text}");
                            if (--left <= 0)
                            {
                                return 0;
                            }
                        }

                        break;
                    case ConfirmedRange r:
                        Console.WriteLine($"confirmed [{r.FromGsn}, {r.ToGsn})");
                        break;
                    case MisSpeculatedRange m:
                        Console.WriteLine($"MIS-SPECULATED [{m.FromGsn}, {m.ToGsn}) shard {m.Shard}: roll back; the range's surviving records follow again");
                        break;
                }
            }

            return 0;
        }));
        return command;
    }
}
