using System.CommandLine;
using Spectre.Console;
using SpecLog.Client;

namespace SpecLog.Cli;

/// <summary>Runs a command's body with a connection, turning the log's refusals into one clear line and an exit code.</summary>
internal static class CliRunner
{
    /// <summary>Exit code when the log could not be reached.</summary>
    public const int Unreachable = 3;

    /// <summary>Exit code when the log refused the request (bad input, unknown shard, position out of range, trimmed).</summary>
    public const int Refused = 2;

    public static async Task<int> RunAsync(
        ParseResult parse, Func<ParseResult, CancellationToken, Task<LogConnection>> connect, CancellationToken cancellationToken, Func<LogConnection, Task<int>> body)
    {
        LogConnection connection;
        try
        {
            connection = await connect(parse, cancellationToken);
        }
        catch (SpecLogUnavailableException e)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]Cannot reach the log:[/] {e.Message}");
            return Unreachable;
        }

        await using (connection)
        {
            try
            {
                return await body(connection);
            }
            catch (Exception e) when (e is ArgumentException or LogTrimmedException or ShardRemovedException or ShardFailedException or InvalidOperationException or TimeoutException)
            {
                AnsiConsole.MarkupLineInterpolated($"[red]{e.GetType().Name}:[/] {e.Message}");
                return Refused;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return 0; // Ctrl+C ends tail and status --watch
            }
        }
    }
}
