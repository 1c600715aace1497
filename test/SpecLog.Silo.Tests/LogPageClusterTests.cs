using System.Net;
using System.Text.Json;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The log page's data (<c>/speclog/api/state</c>) in a three-process cluster: every shard's three replicas and the
/// three Copilot replicas with the silos they run on; after <c>kill -9</c> of a node the page still answers (each grain
/// call is bounded), shows that node's replicas unreachable and every shard led by a survivor, and shows them again
/// once the node is back.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class LogPageClusterTests(ITestOutputHelper log)
{
    [Fact(Timeout = 300_000)]
    public async Task The_page_shows_every_replica_of_the_cluster_and_a_killed_node_as_unreachable_without_hanging()
    {
        var ct = TestContext.Current.CancellationToken;
        var ports = ProcessCluster.Nodes.Select(_ => SiloProcess.FreePort()).ToArray();
        await using var azurite = await AzuriteServer.StartAsync(ct);
        await using var cluster = await ProcessCluster.StartAsync(
            azurite.ConnectionString, 2, node => ["--Silo:Dashboard:Enabled=true", $"--Silo:Dashboard:Port={ports[node]}"], ct);
        var state = $"http://localhost:{ports[0]}/speclog/api/state";
        JsonElement page = default;
        try
        {
            await Task.WhenAll(Enumerable.Range(0, 100).Select(i => cluster.Client.Log.AppendAsync(new byte[] { 3, (byte)i }, cancellationToken: ct)));
            await cluster.UntilAsync(async () => Healthy(page = await ReadAsync(state, ct), unreachable: 0), "the page shows every replica serving", ct);
            Assert.Equal("Copilot", page.GetProperty("replication").GetString());
            Assert.Equal(3, page.GetProperty("shardReplicas").GetInt32());
            Assert.True(page.GetProperty("shards").EnumerateArray().Sum(s => s.GetProperty("durableRecords").GetInt64()) >= 100);
            var silos = page.GetProperty("ordering").EnumerateArray().Select(r => r.GetProperty("silo").GetString()).Distinct().Count();
            Assert.Equal(3, silos); // one ordering replica per node

            cluster.Kill(2);
            await cluster.UntilAsync(async () => Healthy(page = await ReadAsync(state, ct), unreachable: 1), "the page shows node-2's replicas unreachable and survivors leading", ct);
            log.WriteLine("with node-2 dead: " + string.Join("; ", page.GetProperty("shards").EnumerateArray().Select(s =>
                $"shard {s.GetProperty("shard").GetInt32()}: " + string.Join(", ", s.GetProperty("replicas").EnumerateArray().Select(r => r.GetProperty("role").GetString())))));

            await cluster.RestartAsync(2, ct);
            await cluster.UntilAsync(async () => Healthy(page = await ReadAsync(state, ct), unreachable: 0), "the page shows node-2's replicas again", ct);
        }
        catch
        {
            log.WriteLine(page.ValueKind == JsonValueKind.Undefined ? "(no page read)" : page.ToString());
            log.WriteLine(string.Join(Environment.NewLine, cluster.Output));
            throw;
        }
    }

    /// <summary>
    /// Every shard has a leader and exactly <paramref name="unreachable"/> replicas that do not answer, and so many of the
    /// ordering replicas do not answer while the others serve.
    /// </summary>
    private static bool Healthy(JsonElement page, int unreachable)
    {
        if (page.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        var shards = page.GetProperty("shards").EnumerateArray().ToList();
        var ordering = page.GetProperty("ordering").EnumerateArray().ToList();
        return shards.Count == 2
            && shards.All(s => s.GetProperty("error").ValueKind == JsonValueKind.Null
                && s.GetProperty("replicas").EnumerateArray().Count(r => r.GetProperty("role").GetString() == "unreachable") == unreachable
                && s.GetProperty("replicas").EnumerateArray().Count(r => r.GetProperty("role").GetString() == "Leader") == 1)
            && ordering.Count == 3
            && ordering.Count(r => r.GetProperty("role").GetString() == "unreachable") == unreachable
            && ordering.Count(r => r.GetProperty("role").GetString() == "Replica") == 3 - unreachable;
    }

    private static async Task<JsonElement> ReadAsync(string url, CancellationToken ct)
    {
        var (code, text) = await SiloHttp.GetAsync(url, ct);
        return code == HttpStatusCode.OK ? JsonDocument.Parse(text).RootElement.Clone() : default;
    }
}
