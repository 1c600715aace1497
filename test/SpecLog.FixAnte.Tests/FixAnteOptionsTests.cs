namespace SpecLog.FixAnte.Tests;

public sealed class FixAnteOptionsTests
{
    [Fact]
    public void Defaults_are_belfasts_except_the_measured_lag_fix_threshold_and_valid()
    {
        var o = new FixAnteOptions();
        o.Validate();
        Assert.Equal(OrderingMode.FixAnte, o.Mode);
        Assert.Equal(100, o.CutsPerWindow);
        Assert.Equal(TimeSpan.FromMilliseconds(1), o.OrderingInterval);
        Assert.Equal(TimeSpan.FromMicroseconds(1500), o.NoOpDeadline);
        Assert.Equal(2, o.LagFixThreshold(100)); // 2 % of W, measured (Belfast: 3 %, three cuts)
        Assert.True(o.LagFixEnabled);
        Assert.True(o.RateBasedQuotas);
        Assert.True(o.LagFixSlack);
        Assert.Equal(8, o.LagFixSlackReports);
        Assert.Equal(10, o.LagFixMaxSlack(100));
        Assert.Equal(0, o.LagFixMaxSlack(9));
        Assert.Equal(50_000, o.RateMeasureSpanMicros(100));
    }

    [Fact]
    public void Lag_fix_threshold_is_the_ceiling_of_the_fraction_of_w_and_at_least_one()
    {
        var o = new FixAnteOptions();
        for (var w = 1; w <= 1000; w++)
        {
            Assert.Equal(Math.Max(1, (2 * w + 99) / 100), o.LagFixThreshold(w)); // integer ceil(2w/100), the default 2 %
        }

        o.LagFixFraction = 0.5;
        Assert.Equal(3, o.LagFixThreshold(5));
        Assert.Equal(5, o.LagFixThreshold(10));
    }

    public static TheoryData<string> Invalid => new(
        "W", "TOrd", "TolNeg", "TolOne", "MinQ", "MaxQ", "InitLow", "InitHigh", "LagZero", "LagBig", "Deadline",
        "SlackReportsZero", "SlackReportsBig", "MaxSlackNeg", "MaxSlackHalf", "RateSpanNeg", "RateSpanBig");

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Validate_rejects_each_invalid_setting(string which)
    {
        var o = new FixAnteOptions { MinQuota = 2, InitialQuota = 2, MaxQuota = 10 };
        o.Validate();
        switch (which)
        {
            case "W": o.CutsPerWindow = 1; break;
            case "TOrd": o.OrderingInterval = TimeSpan.Zero; break;
            case "TolNeg": o.QuotaTolerance = -0.01; break;
            case "TolOne": o.QuotaTolerance = 1; break;
            case "MinQ": o.MinQuota = 0; o.InitialQuota = 0; break;
            case "MaxQ": o.MaxQuota = 1; break;
            case "InitLow": o.InitialQuota = 1; break;
            case "InitHigh": o.InitialQuota = 11; break;
            case "LagZero": o.LagFixFraction = 0; break;
            case "LagBig": o.LagFixFraction = 1.01; break;
            case "SlackReportsZero": o.LagFixSlackReports = 0; break;
            case "SlackReportsBig": o.LagFixSlackReports = 1025; break;
            case "MaxSlackNeg": o.LagFixMaxSlackFraction = -0.01; break;
            case "MaxSlackHalf": o.LagFixMaxSlackFraction = 0.5; break;
            case "RateSpanNeg": o.RateMeasureFraction = -0.1; break;
            case "RateSpanBig": o.RateMeasureFraction = 16.5; break;
            default: o.NoOpDeadlineFactor = 0; break;
        }

        Assert.Throws<ArgumentException>(o.Validate);
        Assert.Throws<ArgumentException>(() => new SequencerState(o, 1));
        Assert.Throws<ArgumentException>(() => new ShardCore(0, o));
    }
}
