using System.Collections.Concurrent;
using System.Diagnostics;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The <c>speclog</c> tool against a real silo process, as a user runs it: its printed output is checked, not only its
/// exit codes.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class CliTests(ITestOutputHelper log)
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(60);

    [Fact(Timeout = 240_000)]
    public async Task Status_append_read_tail_shards_and_trim_print_what_the_log_holds_and_refusals_are_clear()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = new TempFolder("speclog-cli-");
        var root = temp.Path;
        var output = new ConcurrentQueue<string>();
        try
        {
            await using var silo = SiloProcess.Start("silo", Path.Combine(root, "data"), 2, output, "--SpecLog:Replication:Mode=Single");
            await Waits.UntilAsync(() => silo.IsUp, "the silo is up", StepTimeout, ct);
            var gateway = $"{silo.GatewayPort}";

            var appended = await RunAsync(ct, "--gateway", gateway, "append", "hello", "order 42 paid");
            Assert.Equal(0, appended.Exit);
            var gsns = appended.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToArray();
            Assert.Equal(2, gsns.Length);

            var piped = await RunAsync(ct, ["--gateway", gateway, "append"], stdin: "a\nb\nc\n");
            Assert.Contains("appended 3 records", piped.Out);

            var read = await RunAsync(ct, "--gateway", gateway, "read", $"{gsns[1]}");
            Assert.StartsWith($"{gsns[1]} shard ", read.Out, StringComparison.Ordinal);
            Assert.EndsWith(" order 42 paid\n", read.Out, StringComparison.Ordinal);

            var range = await RunAsync(ct, "--gateway", gateway, "read", "0", "--to", $"{gsns.Max() + 1}");
            Assert.Contains("hello", range.Out);
            Assert.Contains($"2 records in [0, {gsns.Max() + 1})", range.Out);

            var tail = await RunAsync(ct, "--gateway", gateway, "tail", "--from", "0", "--count", "2");
            var specs = tail.Out.Split('\n').Where(l => l.StartsWith("spec ", StringComparison.Ordinal)).ToArray();
            Assert.Equal(2, specs.Length);
            Assert.Contains(specs, l => l.EndsWith(" hello", StringComparison.Ordinal));

            // Tagged records, and a tail filtered at the shards: only the payments of user-7 come, with their tag.
            var tagged = await RunAsync(ct, ["--gateway", gateway, "append", "--tag", "user-7"], stdin: "paid 10\npaid 20\n");
            Assert.Contains("appended 2 records", tagged.Out);
            await RunAsync(ct, "--gateway", gateway, "append", "--tag", "user-8", "paid 30");
            var filtered = await RunAsync(ct, "--gateway", gateway, "tail", "--from", "0", "--tag", "user-7", "--count", "2");
            var taggedSpecs = filtered.Out.Split('\n').Where(l => l.StartsWith("spec ", StringComparison.Ordinal)).ToArray();
            Assert.Equal(2, taggedSpecs.Length);
            Assert.All(taggedSpecs, l => Assert.Contains(" [user-7] paid ", l));
            var prefixed = await RunAsync(ct, "--gateway", gateway, "tail", "--from", "0", "--tag-prefix", "user-", "--count", "3");
            Assert.Contains(" [user-8] paid 30", prefixed.Out);
            var badTag = await RunAsync(ct, "--gateway", gateway, "append", "--tag", new string('t', 300), "x");
            Assert.Equal(2, badTag.Exit);
            Assert.Contains("UTF-8 bytes", badTag.Out);

            var status = await RunAsync(ct, "--gateway", gateway, "status");
            Assert.Contains("2 active of 2", status.Out);
            Assert.Contains("Shards", status.Out);
            Assert.Contains("FixAnte, Single", status.Out);

            var added = await RunAsync(ct, "--gateway", gateway, "shards", "add");
            Assert.Contains("added shard 2", added.Out);
            var status2 = await RunAsync(ct, "--gateway", gateway, "status");
            Assert.Contains("3 active of 3", status2.Out);

            var trim = await RunAsync(ct, "--gateway", gateway, "trim", $"{gsns.Max()}");
            Assert.Contains($"trimmed below GSN {gsns.Max()}", trim.Out);
            var below = await RunAsync(ct, "--gateway", gateway, "read", $"{gsns.Min()}");
            Assert.Equal(2, below.Exit);
            Assert.Contains("LogTrimmedException", below.Out);

            var empty = await RunAsync(ct, "--gateway", gateway, "append", "");
            Assert.Equal(2, empty.Exit);
            Assert.Contains("empty", empty.Out);

            var beyond = await RunAsync(ct, "--gateway", gateway, "read", "999999999");
            Assert.Equal(2, beyond.Exit);
            Assert.Contains("committed", beyond.Out);

            var unreachable = await RunAsync(ct, "--gateway", $"{SiloProcess.FreePort()}", "--connect-timeout", "1", "status");
            Assert.Equal(3, unreachable.Exit);
            Assert.Contains("Cannot reach the log", unreachable.Out);
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, output));
            throw;
        }
    }

    private Task<(int Exit, string Out)> RunAsync(CancellationToken ct, params string[] arguments) => RunAsync(ct, arguments, null);

    /// <summary>Runs the tool's dll (recorded at build time) and returns its exit code and everything it printed.</summary>
    private async Task<(int Exit, string Out)> RunAsync(CancellationToken ct, string[] arguments, string? stdin)
    {
        var start = RecordedDll.StartInfo("SpecLogCliDll", arguments);
        start.RedirectStandardInput = true;
        using var process = Process.Start(start)!;
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(StepTimeout);
        await process.WaitForExitAsync(timeout.Token);
        var text = await stdout + await stderr;
        log.WriteLine($"$ speclog {string.Join(' ', arguments)}  (exit {process.ExitCode}){Environment.NewLine}{text}");
        return (process.ExitCode, text.Replace("\r", "", StringComparison.Ordinal));
    }
}
