namespace SpecLog.Consumer;

/// <summary>A flag one side sets and the other awaits and resets: "something changed, look again".</summary>
internal sealed class AsyncSignal
{
    private TaskCompletionSource _set = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsSet => Volatile.Read(ref _set).Task.IsCompleted;

    /// <summary>Completes when the signal is set.</summary>
    public Task Task => Volatile.Read(ref _set).Task;

    public void Set() => Volatile.Read(ref _set).TrySetResult();

    /// <summary>Clears a set signal; a set that races with this is not lost (the reader looks again after resetting).</summary>
    public void Reset()
    {
        var current = Volatile.Read(ref _set);
        if (current.Task.IsCompleted)
        {
            Interlocked.CompareExchange(ref _set, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), current);
        }
    }

    /// <summary>Waits until the signal is set or <paramref name="timeout"/> passes.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
        }
    }
}
