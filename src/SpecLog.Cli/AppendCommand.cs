using System.CommandLine;
using Spectre.Console;

namespace SpecLog.Cli;

/// <summary><c>speclog append</c>: records from the arguments, a file (a record per line, with a progress bar) or standard input.</summary>
internal static class AppendCommand
{
    private const int InFlight = 256;

    public static Command Create(Func<ParseResult, CancellationToken, Task<LogConnection>> connect)
    {
        var records = new Argument<string[]>("records") { Description = "Records to append (text); none: read lines from --file or standard input", Arity = ArgumentArity.ZeroOrMore };
        var file = new Option<FileInfo?>("--file") { Description = "Append every line of this file as a record" };
        var shard = new Option<int?>("--shard") { Description = "Append to this shard (default: shards in turn)" };
        var tag = new Option<string?>("--tag") { Description = "Tag every record with this (filtered subscriptions match it: tail --tag)" };
        var command = new Command("append", "Appends records; prints each one's GSN (or the range, for files and standard input).") { records, file, shard, tag };
        command.SetAction((parse, ct) => CliRunner.RunAsync(parse, connect, ct, async c =>
        {
            var target = parse.GetValue(shard);
            var tagged = parse.GetValue(tag);
            if (tagged is not null)
            {
                RecordTags.Check(tagged, "--tag");
            }

            Task<long> Append(string text) => tagged is null
                ? c.Log.AppendAsync(System.Text.Encoding.UTF8.GetBytes(text), target, ct)
                : c.Log.AppendAsync(System.Text.Encoding.UTF8.GetBytes(text), tagged, target, ct);

            var given = parse.GetValue(records) ?? [];
            if (given.Length > 0)
            {
                foreach (var text in given)
                {
                    Console.WriteLine(await Append(text));
                }

                return 0;
            }

            if (parse.GetValue(file) is { } f)
            {
                if (!f.Exists)
                {
                    throw new ArgumentException($"No file {f.FullName}.");
                }

                var lines = File.ReadLines(f.FullName).Where(l => l.Length > 0).ToList();
                (long Min, long Max) range = (long.MaxValue, -1);
                await AnsiConsole.Progress().StartAsync(async progress =>
                {
                    var task = progress.AddTask($"appending {lines.Count} records", maxValue: lines.Count);
                    range = await AppendAllAsync(lines, Append, () => task.Increment(1), ct);
                });
                Console.WriteLine($"appended {lines.Count} records, GSNs {range.Min}..{range.Max}");
                return 0;
            }

            var input = new List<string>();
            while (Console.In.ReadLine() is { } line)
            {
                if (line.Length > 0)
                {
                    input.Add(line);
                }
            }

            var (min, max) = await AppendAllAsync(input, Append, () => { }, ct);
            Console.WriteLine(input.Count == 0 ? "nothing to append" : $"appended {input.Count} records, GSNs {min}..{max}");
            return 0;
        }));
        return command;
    }

    /// <summary>Appends with up to <see cref="InFlight"/> records outstanding; returns the lowest and highest GSN.</summary>
    private static async Task<(long Min, long Max)> AppendAllAsync(List<string> lines, Func<string, Task<long>> append, Action done, CancellationToken ct)
    {
        var gate = new SemaphoreSlim(InFlight);
        long min = long.MaxValue, max = -1;
        var tasks = lines.Select(async line =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var gsn = await append(line);
                lock (gate)
                {
                    (min, max) = (Math.Min(min, gsn), Math.Max(max, gsn));
                }

                done();
            }
            finally
            {
                gate.Release();
            }
        }).ToList();
        await Task.WhenAll(tasks);
        return (min, max);
    }
}
