using Microsoft.Extensions.Options;
using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace SpecLog.Server.Placement;

/// <summary>What a grain placed by its data home is.</summary>
public enum DataHomeRole
{
    /// <summary>A shard (key = shard id).</summary>
    Shard,

    /// <summary>The single sequencer (key 0).</summary>
    Sequencer,

    /// <summary>A replica of the replicated ordering layer (key = replica index).</summary>
    SequencerReplica,
}

/// <summary>Places shards where their logs are (see <see cref="DataHomePlacementDirector"/>).</summary>
[GenerateSerializer, Immutable, Alias("speclog.ShardHomePlacement")]
public sealed class ShardHomePlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static readonly ShardHomePlacement Instance = new();
}

/// <summary>Places the single sequencer where its window log is.</summary>
[GenerateSerializer, Immutable, Alias("speclog.SequencerHomePlacement")]
public sealed class SequencerHomePlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static readonly SequencerHomePlacement Instance = new();
}

/// <summary>Places each ordering replica where its replica log is, replicas on distinct silos.</summary>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaHomePlacement")]
public sealed class ReplicaHomePlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static readonly ReplicaHomePlacement Instance = new();
}

/// <summary>Places the shard grain class by its data home.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ShardHomePlacementAttribute() : PlacementAttribute(ShardHomePlacement.Instance);

/// <summary>Places the single sequencer grain class by its data home.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SequencerHomePlacementAttribute() : PlacementAttribute(SequencerHomePlacement.Instance);

/// <summary>Places the ordering replica grain class by its data home.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ReplicaHomePlacementAttribute() : PlacementAttribute(ReplicaHomePlacement.Instance);

/// <summary>
/// Activates the log's grains only where their data is. With <see cref="SpecLogOptions.Nodes"/> set (a multi-silo
/// cluster), grain k of each kind lives on node <c>Nodes[k mod Nodes.Count]</c>: the silo whose
/// <c>SiloOptions.SiloName</c> is that node name, whatever its address or generation, so a restarted silo gets its
/// own shards and replicas back and no other silo ever opens them with an empty log. If that node is not an active
/// member, the activation fails with an error naming it (the caller retries once the node is back). Without nodes (one
/// silo, or the in-process test clusters, where every silo sees the same files) ordering replicas go to distinct silos
/// by address order and shards and the single sequencer to any compatible silo. The sequencer grain of a replicated
/// ordering layer holds no data and runs on the calling silo.
/// </summary>
public sealed class DataHomePlacementDirector(IClusterMembershipService membership, IOptions<SpecLogOptions> options) : IPlacementDirector
{
    /// <inheritdoc />
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        ArgumentNullException.ThrowIfNull(strategy);
        ArgumentNullException.ThrowIfNull(context);
        var role = strategy switch
        {
            ShardHomePlacement => DataHomeRole.Shard,
            SequencerHomePlacement => DataHomeRole.Sequencer,
            ReplicaHomePlacement => DataHomeRole.SequencerReplica,
            _ => throw new ArgumentException($"Unexpected placement strategy {strategy.GetType().Name}.", nameof(strategy)),
        };
        var grain = target.GrainIdentity;
        IReadOnlyList<SiloAddress> silos = context.GetCompatibleSilos(target);
        if (silos.Count == 0)
        {
            throw new OrleansException($"No compatible silo can host {grain}.");
        }

        var nodes = options.Value.Nodes;
        if (role == DataHomeRole.Sequencer && options.Value.Replication.IsReplicated)
        {
            // With a replicated ordering layer the sequencer grain is a stateless façade over the replicas: any silo.
            return Task.FromResult(silos.Contains(context.LocalSilo) ? context.LocalSilo : silos[Random.Shared.Next(silos.Count)]);
        }

        var key = KeyOf(grain);
        if (role == DataHomeRole.Shard)
        {
            // Replica r of shard s lives where shard s + r would: consecutive nodes, so a shard's replicas are on distinct ones.
            key = ShardKeys.ShardOf(key) + ShardKeys.ReplicaOf(key);
        }

        if (nodes.Count == 0)
        {
            return Task.FromResult(role == DataHomeRole.SequencerReplica || (role == DataHomeRole.Shard && options.Value.EffectiveShardReplicas > 1)
                ? DistinctSilos.Choose(key, silos, grain)
                : silos[Random.Shared.Next(silos.Count)]);
        }

        var node = HomeNode(key, nodes);
        var home = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active && string.Equals(m.Name, node, StringComparison.Ordinal) && silos.Contains(m.SiloAddress))
            .Select(m => m.SiloAddress)
            .OrderByDescending(a => a.Generation)
            .FirstOrDefault();
        return home is not null
            ? Task.FromResult(home)
            : throw new OrleansException(
                $"{Describe(role, KeyOf(grain))} lives on node '{node}', which is not an active member of the cluster now "
                + $"(active: {string.Join(", ", membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => $"'{m.Name}'"))}); "
                + "it runs only where its data is: start that node's silo again.");
    }

    /// <summary>The node that holds grain <paramref name="key"/>'s data.</summary>
    public static string HomeNode(long key, IReadOnlyList<string> nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentOutOfRangeException.ThrowIfNegative(key);
        return nodes.Count == 0 ? throw new ArgumentException("No nodes configured.", nameof(nodes)) : nodes[(int)(key % nodes.Count)];
    }

    /// <summary>The keys among 0 … <paramref name="count"/>−1 whose data lives on <paramref name="node"/>.</summary>
    public static IEnumerable<int> KeysOn(string node, int count, IReadOnlyList<string> nodes) =>
        Enumerable.Range(0, count).Where(k => string.Equals(HomeNode(k, nodes), node, StringComparison.Ordinal));

    private static long KeyOf(GrainId grain) =>
        grain.TryGetIntegerKey(out var key, out _) && key >= 0
            ? key
            : throw new ArgumentException($"{grain} has no non-negative integer key; data-home placement needs one.", nameof(grain));

    /// <summary>The shard replicas (as grain keys) among <paramref name="shards"/> shards of <paramref name="replicas"/> replicas whose data lives on <paramref name="node"/>.</summary>
    public static IEnumerable<long> ShardReplicasOn(string node, int shards, int replicas, IReadOnlyList<string> nodes) =>
        from s in Enumerable.Range(0, shards)
        from r in Enumerable.Range(0, replicas)
        where string.Equals(HomeNode(s + r, nodes), node, StringComparison.Ordinal)
        select ShardKeys.Of(s, r);

    private static string Describe(DataHomeRole role, long key) => role switch
    {
        DataHomeRole.Shard => ShardKeys.ReplicaOf(key) == 0 ? $"Shard {key}" : $"Replica {ShardKeys.ReplicaOf(key)} of shard {ShardKeys.ShardOf(key)}",
        DataHomeRole.Sequencer => "The sequencer",
        _ => $"Ordering replica {key}",
    };
}
