using System.Collections.Concurrent;
using System.Diagnostics;

namespace SpecLog.Silo.Tests;

/// <summary>
/// Three silo processes (data nodes node-0 … node-2, <c>--environment Cluster</c>) on loopback with Azure Table
/// membership on an <see cref="AzuriteServer"/>, each with its own data directory under one temporary folder, and a
/// client of the cluster. A node can be killed (<c>kill -9</c>) and started again on the same ports and data.
/// Disposing stops everything and deletes the folder. Used by multi-process tests, the bench's failover scenario and
/// the rollback demonstration sample (linked into them, not copied).
/// </summary>
internal class ProcessCluster : IAsyncDisposable
{
    /// <summary>The data nodes' names (the silo configuration's <c>SpecLog:Nodes</c>).</summary>
    public static readonly string[] Nodes = ["node-0", "node-1", "node-2"];

    private readonly string _connectionString;
    private readonly string _root;
    private readonly int _shards;
    private readonly string[] _settings;
    private readonly Func<int, string[]>? _perNode;
    private readonly SiloProcess?[] _silos = new SiloProcess?[Nodes.Length];
    private readonly (int Silo, int Gateway)[] _ports = Nodes.Select(_ => SiloProcess.FreePorts()).ToArray();
    private readonly ConcurrentQueue<string> _output = new();
    private readonly int[] _lives = new int[Nodes.Length];

    /// <param name="connectionString">The Azure Storage account of the membership table (and checkpoints).</param>
    /// <param name="shards">The log's shard count.</param>
    /// <param name="stepTimeout">How long a node may take to come up (and the client to connect).</param>
    /// <param name="settings">Added to every silo's command line (<c>--SpecLog:ShardReplicas=1</c>, …).</param>
    /// <param name="perNode">Added to node k's command line after <paramref name="settings"/> (its own dashboard port, …).</param>
    protected ProcessCluster(string connectionString, int shards, TimeSpan stepTimeout, string[] settings, Func<int, string[]>? perNode = null)
    {
        _connectionString = connectionString;
        _shards = shards;
        _settings = settings;
        _perNode = perNode;
        StepTimeout = stepTimeout;
        _root = Directory.CreateTempSubdirectory("speclog-cluster-").FullName;
        ClusterId = "c-" + Guid.NewGuid().ToString("N")[..12];
    }

    /// <summary>The cluster id (and service id) of this cluster's silos in the membership table.</summary>
    public string ClusterId { get; }

    /// <summary>How long a node may take to come up.</summary>
    public TimeSpan StepTimeout { get; }

    /// <summary>The client, connected once all three silos were up.</summary>
    public TestClient Client { get; private set; } = null!;

    /// <summary>Every silo's output so far, each line tagged with its node and life (<c>[node-1#2 out] …</c>).</summary>
    public IEnumerable<string> Output => _output;

    /// <summary>Starts the three silos, waits until they are up, and connects the client.</summary>
    public static Task<ProcessCluster> StartAsync(string connectionString, int shards, CancellationToken ct, params string[] settings) =>
        StartAsync(new ProcessCluster(connectionString, shards, TimeSpan.FromSeconds(90), settings), ct);

    /// <summary>Like <see cref="StartAsync(string, int, CancellationToken, string[])"/>, with <paramref name="perNode"/> settings for each node.</summary>
    public static Task<ProcessCluster> StartAsync(string connectionString, int shards, Func<int, string[]> perNode, CancellationToken ct, params string[] settings) =>
        StartAsync(new ProcessCluster(connectionString, shards, TimeSpan.FromSeconds(90), settings, perNode), ct);

    /// <summary>Starts <paramref name="cluster"/>'s silos, waits until they are up, and connects its client.</summary>
    protected static async Task<T> StartAsync<T>(T cluster, CancellationToken ct)
        where T : ProcessCluster
    {
        try
        {
            for (var i = 0; i < Nodes.Length; i++)
            {
                cluster.Start(i);
            }

            await cluster.UntilAsync(() => Task.FromResult(cluster._silos.All(s => s!.IsUp)), "three silos up", ct);
            cluster.Client = await TestClient.ConnectClusterAsync(cluster._connectionString, cluster.ClusterId, cluster.StepTimeout, ct);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Kills node <paramref name="node"/>'s silo with SIGKILL; returns once the process is gone.</summary>
    public void Kill(int node) => _silos[node]!.KillHard();

    /// <summary>Stops node <paramref name="node"/>'s silo with SIGTERM (a graceful shutdown, as an upgrade does) and waits until it exited.</summary>
    public Task StopGracefullyAsync(int node) => _silos[node]!.StopGracefullyAsync(StepTimeout);

    /// <summary>Starts node <paramref name="node"/>'s silo again on its ports and data directory and waits until it is up.</summary>
    public async Task RestartAsync(int node, CancellationToken ct)
    {
        await _silos[node]!.DisposeAsync();
        var silo = Start(node);
        try
        {
            await UntilAsync(() => Task.FromResult(silo.IsUp), $"{Nodes[node]} up again", ct);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message} Its output:{Environment.NewLine}{string.Join(Environment.NewLine, _output.Where(l => l.StartsWith($"[{Nodes[node]}#{_lives[node]}", StringComparison.Ordinal)).TakeLast(40))}", e);
        }
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms until it holds; a <see cref="TimeoutException"/> after <see cref="StepTimeout"/>.</summary>
    public async Task UntilAsync(Func<Task<bool>> condition, string what, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(StepTimeout.TotalSeconds * Stopwatch.Frequency);
        while (!await condition())
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"Timed out waiting for {what}.");
            }

            await Task.Delay(50, ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Client is not null)
        {
            await Client.DisposeAsync();
        }

        foreach (var silo in _silos)
        {
            if (silo is not null)
            {
                await silo.DisposeAsync();
            }
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }

        GC.SuppressFinalize(this);
    }

    private SiloProcess Start(int node)
    {
        _lives[node]++;
        var silo = SiloProcess.StartClusterNode(
            $"{Nodes[node]}#{_lives[node]}", Nodes[node], Path.Combine(_root, Nodes[node]), _shards, _output, _ports[node], ClusterId, _connectionString, [.. _settings, .. _perNode?.Invoke(node) ?? []]);
        _silos[node] = silo;
        return silo;
    }
}
