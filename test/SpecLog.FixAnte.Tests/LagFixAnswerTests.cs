namespace SpecLog.FixAnte.Tests;

/// <summary>A shard answers every lag-fix with FixedLag as soon as the slots below the target are durable.</summary>
public sealed class LagFixAnswerTests
{
    [Fact]
    public void FixedLag_is_sent_once_the_lag_fix_fill_is_durable_even_with_later_records_in_flight()
    {
        var options = new FixAnteOptions { CutsPerWindow = 10 };
        var core = new ShardCore(1, options);
        core.OnCommitted(0, [new WindowConfig(0, 0, 0, 10, [1, 2])], 0);
        core.MakeReport(0);
        var fill = core.NoOpsForLagFix(4);     // 8 slots for cuts 0..3
        Assert.Equal(8, fill);
        core.AssignNoOp(fill);
        core.AssignRecord();                   // slot 8: a new append, still on its way to disk
        core.OnDurable(8, 0);                  // the whole lag-fix fill is durable
        Assert.True(core.ReportDue(1));
        var report = core.MakeReport(1);
        Assert.True(report.FixedLag);          
    }

    [Fact]
    public void A_lag_fix_that_needs_no_fill_is_still_answered()
    {
        var options = new FixAnteOptions { CutsPerWindow = 10 };
        var core = new ShardCore(1, options);
        core.OnCommitted(0, [new WindowConfig(0, 0, 0, 10, [1, 2])], 0);
        core.MakeReport(0);
        for (var i = 0; i < 8; i++)
        {
            core.AssignRecord();               // cuts 0..3 are on their way to disk
        }

        Assert.Equal(0, core.NoOpsForLagFix(4)); // nothing to fill: correct
        core.OnDurable(8, 8);
        var report = core.MakeReport(1);
        Assert.Equal(4, core.LastReportedCut);
        Assert.True(report.FixedLag);          
    }
}
