using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace SpecLog.Server.Placement;

/// <summary>
/// Placement for replicas that must not share a silo (the ordering layer's replicas): the grain with integer key k
/// goes to the (k mod m)-th of the m compatible silos ordered by address, so n ≤ m replicas land on n distinct silos.
/// Every silo computes the same answer from the same membership view.
/// </summary>
[GenerateSerializer, Immutable, Alias("speclog.DistinctSiloPlacement")]
public sealed class DistinctSiloPlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static readonly DistinctSiloPlacement Instance = new();
}

/// <summary>Places the grain class with <see cref="DistinctSiloPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class DistinctSiloPlacementAttribute() : PlacementAttribute(DistinctSiloPlacement.Instance);

/// <summary>Chooses the silo for <see cref="DistinctSiloPlacement"/>.</summary>
public sealed class DistinctSiloPlacementDirector : IPlacementDirector
{
    /// <inheritdoc />
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Task.FromResult(Choose(target.GrainIdentity, context.GetCompatibleSilos(target)));
    }

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

        var ordered = silos.ToArray();
        Array.Sort(ordered);
        return ordered[(int)(key % ordered.Length)];
    }
}
