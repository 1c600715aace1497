using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SpecLog.Client;

namespace Orleans.Hosting;

/// <summary>
/// The connection retry policy <c>AddSpecLogClient</c> gives an Orleans client: retry a failed start every 250 ms,
/// saying once that it waits, until <see cref="SpecLogClientOptions.ConnectTimeout"/> from the first failure; then fail
/// with a <see cref="SpecLogUnavailableException"/> carrying the last error. Cancellation ends the wait at once.
/// </summary>
internal sealed partial class ConnectDeadlineFilter(IOptions<SpecLogClientOptions> options, ILogger<ConnectDeadlineFilter> logger) : IClientConnectionRetryFilter
{
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(250);
    private long _firstFailure;

    public async Task<bool> ShouldRetryConnectionAttempt(Exception exception, CancellationToken cancellationToken)
    {
        var timeout = options.Value.ConnectTimeout;
        if (_firstFailure == 0)
        {
            _firstFailure = Stopwatch.GetTimestamp();
            LogWaiting(logger, timeout.TotalSeconds, exception.Message);
        }

        if (Stopwatch.GetElapsedTime(_firstFailure) + Pause > timeout)
        {
            throw new SpecLogUnavailableException(
                $"No silo of the log answered within {timeout.TotalSeconds:0.#} s (SpecLogClientOptions.ConnectTimeout): " +
                $"check that the silos run and that the client's clustering (gateway address, cluster id, membership table) " +
                $"matches theirs. Last error: {exception.Message}",
                exception);
        }

        await Task.Delay(Pause, cancellationToken);
        return true;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "No silo of the log answered yet; retrying for up to {Seconds} s. ({Error})")]
    private static partial void LogWaiting(ILogger logger, double seconds, string error);
}
