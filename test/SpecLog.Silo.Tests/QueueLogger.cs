using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace SpecLog.Silo.Tests;

/// <summary>
/// Writes a test client's warnings and errors into the queue that collects the silos' output, so a failed (or kept)
/// multi-process run shows what the client saw next to what the silos did.
/// </summary>
internal sealed class QueueLoggerProvider(ConcurrentQueue<string> lines) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new QueueLogger(lines, categoryName);

    public void Dispose()
    {
    }

    private sealed class QueueLogger(ConcurrentQueue<string> lines, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                var error = exception is null ? "" : $" {exception.GetType().Name}: {exception.Message}";
                lines.Enqueue($"[client] {DateTime.UtcNow:HH:mm:ss.fff} {logLevel}: {category} {formatter(state, exception)}{error}");
            }
        }
    }
}
