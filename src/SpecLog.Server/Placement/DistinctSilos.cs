namespace SpecLog.Server.Placement;

/// <summary>
/// Distinct silos for replicas when no data homes are configured (the in-process test clusters): the grain with
/// integer key k goes to the (k mod m)-th of the m compatible silos ordered by address, so n ≤ m replicas land on n
/// distinct silos. Every silo computes the same answer from the same membership view.
/// </summary>
public static class DistinctSilos
{
    /// <summary>The silo for <paramref name="grain"/> among <paramref name="silos"/> (which need not be sorted).</summary>
    public static SiloAddress Choose(GrainId grain, IReadOnlyList<SiloAddress> silos)
    {
        ArgumentNullException.ThrowIfNull(silos);
        if (silos.Count == 0)
        {
            throw new OrleansException($"No compatible silo can host {grain}.");
        }

        if (!grain.TryGetIntegerKey(out var key, out _) || key < 0)
        {
            throw new ArgumentException($"{grain} has no non-negative integer key; distinct-silo placement needs one.", nameof(grain));
        }

        return Choose(key, silos, grain);
    }

    /// <summary>The (<paramref name="key"/> mod m)-th of the m <paramref name="silos"/> ordered by address, for <paramref name="grain"/>.</summary>
    public static SiloAddress Choose(long key, IReadOnlyList<SiloAddress> silos, GrainId grain)
    {
        ArgumentNullException.ThrowIfNull(silos);
        if (silos.Count == 0)
        {
            throw new OrleansException($"No compatible silo can host {grain}.");
        }

        var ordered = silos.ToArray();
        Array.Sort(ordered);
        return ordered[(int)(key % ordered.Length)];
    }
}
