using System.Diagnostics;
using SpecLog.Consumer;
using SpecLog.Samples;

namespace SpecLog.Samples.FraudDetection;

/// <summary>One user's payment statistics (Welford's running mean and variance).</summary>
[GenerateSerializer, Alias("samples.fraud.UserStats")]
public sealed class UserStats
{
    [Id(0)] public long Count { get; set; }

    [Id(1)] public double Mean { get; set; }

    [Id(2)] public double M2 { get; set; }

    public double Deviation => Count > 1 ? Math.Sqrt(M2 / (Count - 1)) : 0;

    public void Add(double x)
    {
        Count++;
        var delta = x - Mean;
        Mean += delta / Count;
        M2 += delta * (x - Mean);
    }
}

/// <summary>The decision on one payment: released only once the payment's position is confirmed.</summary>
public readonly record struct Verdict(int User, int Cents, bool Flagged, long AppendedAtMicros) : ITimedOutput
{
    bool ITimedOutput.IsAlert => Flagged;

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{(Flagged ? "ALERT" : "ok")} user {User} {Cents / 100.0:0.00}");
}

/// <summary>The application: per-user statistics as the state, a verdict per payment as the output.</summary>
public static class FraudModel
{
    /// <summary>Time the model spends scoring each payment (busy, as a real model would use the CPU).</summary>
    public static TimeSpan ScoringTime { get; set; } = TimeSpan.FromMilliseconds(0.2);

    public static Dictionary<int, UserStats> NewState() => [];

    /// <summary>The application as the sample runner and the bench run it: payments in GSN order, one state over the whole log.</summary>
    public static SampleApp<Dictionary<int, UserStats>, Verdict> App() =>
        new("fraud", NewState, Apply, (i, now) => (Payment.Generate(i, now).Encode(), null), ConsumerOrdering.Gsn);

    /// <summary>Scores a payment against its user's history (an outlier is over 4 deviations and over twice the mean), then adds it.</summary>
    public static Dictionary<int, UserStats> Apply(Dictionary<int, UserStats> users, ConsumedRecord record, OutputBuffer<Verdict> outputs)
    {
        if (Payment.Decode(record.Payload.Span) is not { } p)
        {
            return users; // not a payment
        }

        var end = Stopwatch.GetTimestamp() + (long)(ScoringTime.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            Thread.SpinWait(20);
        }

        if (!users.TryGetValue(p.User, out var stats))
        {
            users[p.User] = stats = new UserStats();
        }

        var flagged = stats.Count >= 8 && p.Cents > stats.Mean + 4 * stats.Deviation && p.Cents > 2 * stats.Mean;
        stats.Add(p.Cents);
        outputs.Emit(new Verdict(p.User, p.Cents, flagged, p.AppendedAtMicros));
        return users;
    }
}
