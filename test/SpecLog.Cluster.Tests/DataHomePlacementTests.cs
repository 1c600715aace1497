using System.Collections.Immutable;
using System.Net;
using Microsoft.Extensions.Options;
using Orleans.Runtime.Placement;
using SpecLog.Server;
using SpecLog.Server.Placement;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// Data-home placement: with <c>SpecLog:Nodes</c> set, a shard or ordering replica activates only on the silo named
/// after its home node (the newest generation of it), never elsewhere; without nodes the old behaviour holds.
/// </summary>
public sealed class DataHomePlacementTests
{
    private static readonly string[] Nodes = ["node-0", "node-1", "node-2"];

    private static SiloAddress Silo(int port, int generation) => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port), generation);

    private static GrainId Key(string type, long k) => GrainId.Create(GrainType.Create(type), GrainIdKeyExtensions.CreateIntegerKey(k));

    private static DataHomePlacementDirector Director(IEnumerable<(SiloAddress Silo, SiloStatus Status, string Name)> members, SequencerReplication mode = SequencerReplication.Copilot, params string[] nodes)
    {
        var snapshot = new ClusterMembershipSnapshot(
            members.ToImmutableDictionary(m => m.Silo, m => new ClusterMember(m.Silo, m.Status, m.Name)),
            new MembershipVersion(1));
        var options = new SpecLogOptions { Nodes = [.. nodes], Replication = new ReplicationOptions { Mode = mode } };
        return new DataHomePlacementDirector(new FixedMembership(snapshot), Options.Create(options));
    }

    private static SiloAddress Place(DataHomePlacementDirector director, PlacementStrategy strategy, GrainId grain, IReadOnlyList<SiloAddress> compatible, SiloAddress? local = null) =>
        director.OnAddActivation(strategy, new PlacementTarget(grain, [], default, 0), new Context(compatible, local ?? compatible[0])).GetAwaiter().GetResult();

    [Fact]
    public void Each_shard_and_replica_goes_to_the_silo_named_after_its_home_node_whatever_the_addresses()
    {
        // Addresses deliberately in the reverse order of the names.
        var silos = new[] { Silo(11113, 1), Silo(11112, 1), Silo(11111, 1) };
        var director = Director(silos.Select((s, i) => (s, SiloStatus.Active, Nodes[i])), SequencerReplication.Copilot, Nodes);
        for (var k = 0; k < 7; k++)
        {
            Assert.Equal(silos[k % 3], Place(director, ShardHomePlacement.Instance, Key("shard", k), silos));
            Assert.Equal(silos[k % 3], Place(director, ReplicaHomePlacement.Instance, Key("replica", k), silos));
            Assert.Equal(Nodes[k % 3], DataHomePlacementDirector.HomeNode(k, Nodes));
        }
    }

    [Fact]
    public void A_restarted_node_is_chosen_by_its_newest_generation_and_a_dead_one_never()
    {
        var old = Silo(11111, 1);
        var restarted = Silo(11119, 7);
        var other = Silo(11112, 1);
        var director = Director(
            [(old, SiloStatus.Dead, "node-0"), (restarted, SiloStatus.Active, "node-0"), (other, SiloStatus.Active, "node-1")],
            SequencerReplication.Copilot,
            "node-0", "node-1");
        Assert.Equal(restarted, Place(director, ShardHomePlacement.Instance, Key("shard", 2), [other, restarted]));
    }

    [Fact]
    public void A_grain_whose_home_node_is_down_fails_with_an_error_naming_the_node_instead_of_starting_elsewhere()
    {
        var silos = new[] { Silo(11111, 1), Silo(11112, 1) };
        var director = Director([(silos[0], SiloStatus.Active, "node-0"), (silos[1], SiloStatus.Active, "node-1")], SequencerReplication.Copilot, Nodes);
        var e = Assert.Throws<OrleansException>(() => Place(director, ShardHomePlacement.Instance, Key("shard", 5), silos));
        Assert.Contains("Shard 5", e.Message, StringComparison.Ordinal);
        Assert.Contains("'node-2'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_replicated_sequencer_facade_holds_no_data_and_runs_on_the_calling_silo()
    {
        var silos = new[] { Silo(11111, 1), Silo(11112, 1), Silo(11113, 1) };
        var director = Director(silos.Select((s, i) => (s, SiloStatus.Active, Nodes[i])), SequencerReplication.Copilot, Nodes);
        Assert.Equal(silos[2], Place(director, SequencerHomePlacement.Instance, Key("sequencer", 0), silos, local: silos[2]));

        var single = Director(silos.Select((s, i) => (s, SiloStatus.Active, Nodes[i])), SequencerReplication.Single, Nodes);
        Assert.Equal(silos[0], Place(single, SequencerHomePlacement.Instance, Key("sequencer", 0), silos, local: silos[2]));
    }

    [Fact]
    public void Without_nodes_replicas_go_to_distinct_silos_by_address_and_shards_to_any_compatible_silo()
    {
        var silos = new[] { Silo(11113, 1), Silo(11111, 1), Silo(11112, 1) };
        var director = Director(silos.Select(s => (s, SiloStatus.Active, "x")));
        Assert.Equal(3, Enumerable.Range(0, 3).Select(k => Place(director, ReplicaHomePlacement.Instance, Key("replica", k), silos)).Distinct().Count());
        Assert.Contains(Place(director, ShardHomePlacement.Instance, Key("shard", 0), silos), silos);
    }

    [Fact]
    public void Nodes_must_be_distinct_and_at_least_as_many_as_the_ordering_replicas()
    {
        var validator = new SpecLogOptionsValidator();
        Assert.True(validator.Validate(null, new SpecLogOptions { Nodes = ["a", "b", "c"] }).Succeeded);
        Assert.Contains("distinct", validator.Validate(null, new SpecLogOptions { Nodes = ["a", "a", "c"] }).FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Replicas is 3", validator.Validate(null, new SpecLogOptions { Nodes = ["a", "b"] }).FailureMessage, StringComparison.Ordinal);
        Assert.True(validator.Validate(null, new SpecLogOptions { Nodes = ["a"], Replication = new ReplicationOptions { Mode = SequencerReplication.Single } }).Succeeded);
    }

    private sealed class FixedMembership(ClusterMembershipSnapshot snapshot) : IClusterMembershipService
    {
        public ClusterMembershipSnapshot CurrentSnapshot => snapshot;

        public IAsyncEnumerable<ClusterMembershipSnapshot> MembershipUpdates => throw new NotSupportedException();

        public ValueTask Refresh(MembershipVersion minimumVersion = default, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public Task<bool> TryKill(SiloAddress siloAddress) => Task.FromResult(false);
    }

    private sealed class Context(IReadOnlyList<SiloAddress> compatible, SiloAddress local) : IPlacementContext
    {
        public SiloAddress LocalSilo => local;

        public SiloStatus LocalSiloStatus => SiloStatus.Active;

        public SiloAddress[] GetCompatibleSilos(PlacementTarget target) => [.. compatible];

        public IReadOnlyDictionary<ushort, SiloAddress[]> GetCompatibleSilosWithVersions(PlacementTarget target) =>
            new Dictionary<ushort, SiloAddress[]> { [0] = [.. compatible] };
    }
}
