using System.Net;
using SpecLog.Server.Placement;

namespace SpecLog.Cluster.Tests;

public sealed class DistinctSiloPlacementTests
{
    private static readonly GrainType Replica = GrainType.Create("replica");

    private static GrainId Key(long k) => GrainId.Create(Replica, GrainIdKeyExtensions.CreateIntegerKey(k));

    private static List<SiloAddress> Silos(int count) =>
        Enumerable.Range(0, count).Select(i => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11111 + i), 1)).ToList();

    [Theory]
    [InlineData(3, 3)]
    [InlineData(3, 4)]
    [InlineData(5, 5)]
    [InlineData(5, 7)]
    public void Replicas_LandOnDistinctSilos_WhenThereAreEnough(int replicas, int silos)
    {
        var available = Silos(silos);
        var chosen = Enumerable.Range(0, replicas).Select(k => DistinctSilos.Choose(Key(k), available)).ToList();
        Assert.Equal(replicas, chosen.Distinct().Count());
    }

    [Fact]
    public void EverySiloComputesTheSameAnswer_WhateverOrderItListsSilosIn()
    {
        var available = Silos(5);
        var shuffled = available.AsEnumerable().Reverse().ToList();
        for (var k = 0; k < 5; k++)
        {
            Assert.Equal(DistinctSilos.Choose(Key(k), available), DistinctSilos.Choose(Key(k), shuffled));
        }
    }

    [Fact]
    public void FewerSilosThanReplicas_SpreadsOverAllOfThem()
    {
        var available = Silos(2);
        var chosen = Enumerable.Range(0, 3).Select(k => DistinctSilos.Choose(Key(k), available)).ToHashSet();
        Assert.Equal(available.ToHashSet(), chosen);
    }

    [Fact]
    public void BadTargets_AreRefused()
    {
        Assert.Throws<OrleansException>(() => DistinctSilos.Choose(Key(0), []));
        var stringKeyed = GrainId.Create(Replica, "not-a-number");
        Assert.Throws<ArgumentException>(() => DistinctSilos.Choose(stringKeyed, Silos(3)));
    }
}
