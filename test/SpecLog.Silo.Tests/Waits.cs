using System.Diagnostics;

namespace SpecLog.Silo.Tests;

/// <summary>Polls a condition about other processes (which raise no events here) until it holds or a deadline passes.</summary>
internal static class Waits
{
    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan timeout, CancellationToken ct) =>
        UntilAsync(() => Task.FromResult(condition()), what, timeout, ct);

    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!await condition())
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds} s waiting for {what}.");
            }

            await Task.Delay(20, ct);
        }
    }
}
