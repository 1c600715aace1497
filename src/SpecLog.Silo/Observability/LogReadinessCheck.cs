using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using SpecLog.Server;
using SpecLog.Server.Placement;

namespace SpecLog.Silo.Observability;

/// <summary>
/// <c>/readyz</c>: this silo may take traffic when its shards and ordering replicas have recovered, the ordering layer
/// answers with a quorum of its replicas, and every shard replica this silo holds serves (leads or follows; not still
/// probing or rebuilding a lost state). Each question is asked with a short timeout, so a dead peer makes the answer
/// "not ready" within <see cref="BoundedCall.Timeout"/>, never a hung probe.
/// </summary>
internal sealed class LogReadinessCheck(SiloReadiness readiness, IGrainFactory grains, IOptions<SpecLogOptions> options, SiloSettings settings) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!readiness.LogUp)
        {
            return HealthCheckResult.Unhealthy("the silo's shards and ordering replicas have not recovered yet");
        }

        var o = options.Value;
        var problems = new List<string>();
        var sequencer = await BoundedCall.Ask(() => grains.GetGrain<ISequencerGrain>(0).GetStatusAsync(), cancellationToken);
        if (sequencer is null)
        {
            problems.Add("the ordering layer does not answer");
        }

        if (o.Replication.IsReplicated)
        {
            var n = o.Replication.Replicas;
            var answers = await Task.WhenAll(Enumerable.Range(0, n).Select(r => BoundedCall.Ask(() => grains.GetGrain<ISequencerReplicaGrain>(r).GetStatusAsync(), cancellationToken)));
            var live = answers.Count(a => a is not null && a.Role == "Replica");
            if (live < n / 2 + 1)
            {
                problems.Add($"the ordering layer has no quorum: {live} of {n} replicas serve, {n / 2 + 1} needed");
            }
        }

        var mine = o.Nodes.Count > 0
            ? DataHomePlacementDirector.ShardReplicasOn(settings.NodeName ?? "", o.ShardCount, o.EffectiveShardReplicas, o.Nodes).ToList()
            : [.. ShardKeys.All(o.ShardCount, o.EffectiveShardReplicas)];
        var departed = sequencer?.DepartedShards ?? [];
        var shards = await Task.WhenAll(mine.Where(k => !departed.Contains(ShardKeys.ShardOf(k)))
            .Select(async k => (Key: k, Status: await BoundedCall.Ask(() => grains.GetGrain<IShardGrain>(k).GetStatusAsync(), cancellationToken))));
        foreach (var (key, status) in shards)
        {
            var name = o.EffectiveShardReplicas > 1 ? $"shard {ShardKeys.ShardOf(key)} replica {ShardKeys.ReplicaOf(key)}" : $"shard {ShardKeys.ShardOf(key)}";
            if (status is null)
            {
                problems.Add($"{name} does not answer");
            }
            else if (o.EffectiveShardReplicas > 1 && status.Role is not ("Leader" or "Follower"))
            {
                problems.Add($"{name} is {status.Role.ToLowerInvariant()}");
            }
        }

        var data = new Dictionary<string, object>
        {
            ["shardReplicasHere"] = mine.Count,
            ["committedGsn"] = sequencer?.CommittedGsn ?? -1,
        };
        return problems.Count == 0
            ? HealthCheckResult.Healthy($"ready: {mine.Count} shard replica(s) here serve, the ordering layer answers (committed GSN {sequencer!.CommittedGsn})", data)
            : HealthCheckResult.Unhealthy(string.Join("; ", problems), data: data);
    }
}
