namespace SpecLog.FixAnte.Tests;

/// <summary>The shard's account of time spent with durable records beyond its known windows (bench scenario 5 reads it).</summary>
public sealed class ShardWindowWaitTests
{
    [Fact]
    public void Counts_time_from_running_past_the_known_windows_until_the_next_window_arrives()
    {
        var core = new ShardCore(0, new FixAnteOptions());
        var w0 = new WindowConfig(0, 0, 0, 4, [2]); // shard 0 knows 8 slots
        core.OnCommitted(0, [w0], nowMicros: 0);

        core.OnDurable(8, 8, nowMicros: 100); // exactly the known slots: no wait
        Assert.Equal(0, core.WindowWaitMicros);

        core.OnDurable(10, 10, nowMicros: 200); // two slots beyond window 0: waiting from 200
        core.OnDurable(11, 11, nowMicros: 450); // still waiting: 250 µs counted so far
        Assert.Equal(250, core.WindowWaitMicros);

        core.OnCommitted(2, [w0.Next([2])], nowMicros: 1_000); // window 1 covers slots 8..15: the wait ends
        Assert.Equal(800, core.WindowWaitMicros);

        core.OnDurable(12, 12, nowMicros: 5_000); // inside window 1: nothing more
        Assert.Equal(800, core.WindowWaitMicros);
    }

    [Fact]
    public void Scalog_mode_and_calls_without_a_time_do_not_count()
    {
        var scalog = new ShardCore(0, new FixAnteOptions { Mode = OrderingMode.Scalog });
        scalog.OnDurable(5, 5, nowMicros: 10);
        scalog.OnDurable(6, 6, nowMicros: 1_000);
        Assert.Equal(0, scalog.WindowWaitMicros);

        var fixAnte = new ShardCore(0, new FixAnteOptions());
        fixAnte.OnCommitted(0, [new WindowConfig(0, 0, 0, 2, [1])], nowMicros: 0);
        fixAnte.OnDurable(5, 5);
        fixAnte.OnDurable(6, 6);
        Assert.Equal(0, fixAnte.WindowWaitMicros);
    }
}
