namespace SpecLog.Silo.Observability;

/// <summary>A grain call the silo's health check and log page make with a short timeout: a dead peer answers null, never a hang.</summary>
internal static class BoundedCall
{
    /// <summary>How long each call may take.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    /// <summary>The call's answer, or null when it failed or took longer than <see cref="Timeout"/>.</summary>
    public static async Task<T?> Ask<T>(Func<Task<T>> call, CancellationToken cancellationToken)
        where T : class
    {
        try
        {
            return await call().WaitAsync(Timeout, cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or OrleansException or ShardNotLeaderException or InvalidOperationException or ArgumentException)
        {
            return null;
        }
    }
}
