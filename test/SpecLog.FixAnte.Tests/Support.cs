using CsCheck;
using Xunit.Sdk;

namespace SpecLog.FixAnte.Tests;

/// <summary>Assertions that name the failing case (property tests run thousands of cases; the index matters).</summary>
internal static class Expect
{
    public static void Equal<T>(T expected, T actual, Func<string> what)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            throw new XunitException($"{what()}: expected {expected}, got {actual}");
        }
    }

    public static void True(bool condition, Func<string> what)
    {
        if (!condition)
        {
            throw new XunitException(what());
        }
    }
}

/// <summary>Shared CsCheck generators.</summary>
internal static class Gens
{
    /// <summary>A quota: zero about a third of the time.</summary>
    public static readonly Gen<int> Quota = Gen.Int[-2, 4].Select(q => Math.Max(0, q));

    /// <summary>Quotas for 1..5 shards, at least one non-zero.</summary>
    public static readonly Gen<int[]> Quotas = Gen.Int[1, 5].SelectMany(n => Quota.Array[n]).Where(q => q.Sum() > 0);

    /// <summary>One window: W in 1..6 and its quotas.</summary>
    public static readonly Gen<(int W, int[] Quotas)> Window = Gen.Select(Gen.Int[1, 6], Quotas);

    /// <summary>A sequence of 1..7 windows (shard count, quotas and W may change at every boundary).</summary>
    public static readonly Gen<List<(int W, int[] Quotas)>> Windows = Window.List[1, 7];

    public static string Print((int W, int[] Quotas) w) => $"(W={w.W}, q=[{string.Join(',', w.Quotas)}])";

    public static string Print(List<(int W, int[] Quotas)> ws) => string.Join(" ", ws.Select(Print));
}
