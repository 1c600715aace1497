namespace SpecLog.Client;

/// <summary>Settings of <see cref="SpecLogClient"/>.</summary>
public sealed class SpecLogClientOptions
{
    /// <summary>Default interval at which subscriptions re-register with shards (repairs subscriptions a shard dropped).</summary>
    public static readonly TimeSpan DEFAULT_SUBSCRIPTION_REFRESH = TimeSpan.FromSeconds(2);

    /// <summary>Default number of shard pushes a subscription buffers before it slows the shards down.</summary>
    public const int DEFAULT_SUBSCRIPTION_BUFFER = 64;

    /// <summary>How often subscriptions re-register with their shards.</summary>
    public TimeSpan SubscriptionRefresh { get; set; } = DEFAULT_SUBSCRIPTION_REFRESH;

    /// <summary>Shard pushes buffered per subscription; a consumer slower than this applies back-pressure to the shards.</summary>
    public int SubscriptionBuffer { get; set; } = DEFAULT_SUBSCRIPTION_BUFFER;
}
