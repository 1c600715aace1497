namespace SpecLog.Silo.Tests;

/// <summary>
/// The tests that run silo processes run one after another: together they would start up to eight processes and two
/// Azurites on a two-core machine, and every timing in them (failovers, restarts) would measure the contention.
/// </summary>
[CollectionDefinition(Name)]
public sealed class SiloProcessCollection
{
    public const string Name = "silo processes";
}
