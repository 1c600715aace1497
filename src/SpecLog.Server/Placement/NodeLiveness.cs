using Microsoft.Extensions.Options;

namespace SpecLog.Server.Placement;

/// <summary>
/// Whether the node holding a grain's data is an active member of the cluster, so replicas do not send protocol
/// messages to a peer whose node is known to be down: each would fail placement (the peer runs only at home) and be
/// retried and logged by Orleans, a storm on a two-core machine. Without <see cref="SpecLogOptions.Nodes"/> every peer
/// counts as reachable. The answer is cached per membership version.
/// </summary>
public sealed class NodeLiveness(IClusterMembershipService membership, IOptions<SpecLogOptions> options)
{
    private readonly object _gate = new();
    private MembershipVersion _version = MembershipVersion.MinValue;
    private HashSet<string> _active = [];

    /// <summary>True if the home node of data-home key <paramref name="homeKey"/> is active (or no nodes are configured).</summary>
    public bool IsHomeActive(long homeKey)
    {
        var nodes = options.Value.Nodes;
        if (nodes.Count == 0)
        {
            return true;
        }

        var node = DataHomePlacementDirector.HomeNode(homeKey, nodes);
        var snapshot = membership.CurrentSnapshot;
        lock (_gate)
        {
            if (snapshot.Version != _version)
            {
                _active = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
                _version = snapshot.Version;
            }

            return _active.Contains(node);
        }
    }
}
