using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;
using SpecLog.Silo.LogDashboard;
using SpecLog.Silo.Observability;
using SpecLog.FixAnte;
using SpecLog.Server;
using SpecLog.Server.Placement;

namespace SpecLog.Silo;

/// <summary>Builds, starts and stops the silo process: configuration, Orleans, the log, the dashboard.</summary>
internal static partial class SiloHost
{
    /// <summary>Exit code for settings that cannot work.</summary>
    public const int ExitBadConfiguration = 2;

    /// <summary>Exit code when the silo could not start (port taken, data directory locked, recovery failed).</summary>
    public const int ExitStartFailed = 3;

    /// <summary>Runs the silo until Ctrl+C or SIGTERM; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var environment = SiloConfiguration.ResolveEnvironment(args);
        SiloSettings settings;
        try
        {
            var bootstrap = SiloConfiguration.Load(environment, args);
            settings = bootstrap.GetSection(SiloSettings.SectionName).Get<SiloSettings>() ?? new SiloSettings();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or IOException or InvalidDataException)
        {
            await Console.Error.WriteLineAsync($"SpecLog silo: cannot read configuration: {e.Message}");
            return ExitBadConfiguration;
        }

        var errors = settings.Validate();
        if (errors.Count > 0)
        {
            await Console.Error.WriteLineAsync("SpecLog silo: invalid settings:" + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", errors));
            return ExitBadConfiguration;
        }

        var host = settings.Dashboard.Enabled ? BuildWebHost(args, environment, settings) : BuildGenericHost(args, environment, settings);
        try
        {
            return await RunHostAsync(host, environment, settings);
        }
        finally
        {
            if (host is IAsyncDisposable asyncDisposable)
            {
                await asyncDisposable.DisposeAsync();
            }
            else
            {
                host.Dispose();
            }
        }
    }

    private static async Task<int> RunHostAsync(IHost host, string environment, SiloSettings settings)
    {
        var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SpecLog.Silo");
        SpecLogOptions options;
        try
        {
            options = host.Services.GetRequiredService<IOptions<SpecLogOptions>>().Value;
        }
        catch (OptionsValidationException e)
        {
            await Console.Error.WriteLineAsync("SpecLog silo: invalid settings:" + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", e.Failures));
            return ExitBadConfiguration;
        }
        catch (InvalidOperationException e)
        {
            // A value the binder cannot convert, e.g. SpecLog:ShardCount=four.
            await Console.Error.WriteLineAsync($"SpecLog silo: cannot read configuration: {e.Message}");
            return ExitBadConfiguration;
        }

        if (settings.Clustering is (ClusteringMode.AzureStorage or ClusteringMode.Kubernetes) && options.Nodes.Count == 0)
        {
            await Console.Error.WriteLineAsync("SpecLog silo: invalid settings:" + Environment.NewLine
                + $"  SpecLog:Nodes must list the cluster's data nodes with Silo:Clustering={settings.Clustering} (silo-config/appsettings.Cluster.json has three; the Kubernetes manifest lists the StatefulSet's pods).");
            return ExitBadConfiguration;
        }

        DataDirectoryLock? dataLock = null;
        try
        {
            if (settings.LockDataDirectory)
            {
                dataLock = DataDirectoryLock.Acquire(options.DataDirectory);
            }
        }
        catch (IOException e)
        {
            LogCannotStart(logger, e.Message);
            await Console.Error.WriteLineAsync($"SpecLog silo: {e.Message}");
            return ExitStartFailed;
        }

        using (dataLock)
        {
            LogStarting(logger, environment, options.DataDirectory, settings.Clustering);
            var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            try
            {
                await host.StartAsync(stopping);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                // Ctrl+C or SIGTERM while starting (Orleans reports it as a cancelled lifecycle): stop what did start.
                await host.StopAsync(CancellationToken.None);
                Console.WriteLine("SpecLog silo stopped before it was up.");
                return 0;
            }
            catch (Exception e)
            {
                LogStartFailed(logger, e);
                var ports = $"silo {settings.SiloPort}, gateway {settings.GatewayPort}" + (settings.Dashboard.Enabled ? $", dashboard {settings.Dashboard.Port}" : "");
                var hint = e is Microsoft.AspNetCore.Connections.AddressInUseException || e.InnerException is System.Net.Sockets.SocketException
                    ? $" (one of the ports is taken: {ports}; is another silo running?)"
                    : string.Empty;
                await Console.Error.WriteLineAsync($"SpecLog silo: failed to start: {e.Message}{hint}");
                return ExitStartFailed;
            }

            var recovered = 0L;
            if (settings.ActivateLogOnStart)
            {
                try
                {
                    recovered = await ActivateLogAsync(host.Services.GetRequiredService<IGrainFactory>(), options, settings, logger, stopping);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    // Ctrl+C while the log was coming up: fall through to the normal shutdown.
                }
                catch (Exception e)
                {
                    LogActivationFailed(logger, e);
                    await Console.Error.WriteLineAsync($"SpecLog silo: the log did not come up: {e.Message}");
                    await host.StopAsync(CancellationToken.None);
                    return ExitStartFailed;
                }
            }

            if (!stopping.IsCancellationRequested)
            {
                host.Services.GetRequiredService<SiloReadiness>().MarkLogUp();
                PrintBanner(host, environment, settings, options, recovered);
            }

            await host.WaitForShutdownAsync();
            LogStopped(logger);
            Console.WriteLine("SpecLog silo stopped.");
            return 0;
        }
    }

    /// <summary>The host with Kestrel serving the Orleans dashboard.</summary>
    private static WebApplication BuildWebHost(string[] args, string environment, SiloSettings settings)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            EnvironmentName = environment,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Configuration.UseSiloSources(environment, args);
        builder.WebHost.ConfigureKestrel(kestrel => ListenDashboard(kestrel, settings.Dashboard));
        ConfigureHost(builder, settings);

        builder.Services.AddSiloHealthChecks();
        builder.Services.AddLogPage();
        var app = builder.Build();
        var path = settings.Dashboard.Path.TrimEnd('/');
        var logPath = settings.Dashboard.LogPath.TrimEnd('/');
        app.UseDashboardAuthentication(settings.Dashboard, HealthEndpoints.Liveness, HealthEndpoints.Readiness, settings.Telemetry.PrometheusPath);
        app.UseLogPageLink(path, logPath);
        app.MapOrleansDashboard(routePrefix: path);
        app.MapLogPage(logPath, path);
        app.MapSiloHealthChecks();
        if (settings.Telemetry.Prometheus)
        {
            app.MapPrometheusScrapingEndpoint(settings.Telemetry.PrometheusPath);
        }
        if (path.Length > 0)
        {
            app.MapGet("/", () => Results.Redirect(path));
        }

        return app;
    }

    /// <summary>The host without any HTTP server (dashboard off).</summary>
    private static IHost BuildGenericHost(string[] args, string environment, SiloSettings settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            Args = args,
            EnvironmentName = environment,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Configuration.UseSiloSources(environment, args);
        ConfigureHost(builder, settings);
        return builder.Build();
    }

    private static void ConfigureHost(IHostApplicationBuilder builder, SiloSettings settings)
    {
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.ShutdownTimeout);
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton<SiloReadiness>();
        builder.Services.AddSiloTelemetry(settings);
        var configuration = builder.Configuration;
        builder.UseOrleans(silo => ConfigureSilo(silo, configuration, settings));
    }

    /// <summary>Clustering, the log bound to the <c>SpecLog</c> section, and the dashboard.</summary>
    private static void ConfigureSilo(ISiloBuilder silo, IConfiguration configuration, SiloSettings settings)
    {
        if (settings.Telemetry.TraceOrleansCalls && !string.IsNullOrWhiteSpace(settings.Telemetry.OtlpEndpoint))
        {
            silo.AddActivityPropagation(); // Orleans' RPC spans around every grain call (see TelemetrySettings.TraceOrleansCalls)
        }

        switch (settings.Clustering)
        {
            case ClusteringMode.Localhost:
                silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, primarySiloEndpoint: null, settings.ServiceId, settings.ClusterId);
                break;
            case ClusteringMode.Kubernetes:
                ConfigureIdsAndPorts(silo, settings, advertised: null);
                ConfigureKubernetesHosting(silo, settings.Kubernetes);
                ConfigureStorageMembership(silo, settings);
                break;
            case ClusteringMode.AzureStorage:
                ConfigureIdsAndPorts(silo, settings, IPAddress.Parse(settings.AdvertisedAddress));
                ConfigureStorageMembership(silo, settings);
                break;
            default:
                throw new InvalidOperationException($"Unknown Silo:Clustering '{settings.Clustering}'.");
        }

        if (!string.IsNullOrWhiteSpace(settings.NodeName))
        {
            silo.Configure<SiloOptions>(o => o.SiloName = settings.NodeName);
        }

        var explicitReplication = !string.IsNullOrWhiteSpace(configuration["SpecLog:Replication:Mode"]);
        silo.AddSpecLog(ob => ob
            .Bind(configuration.GetSection("SpecLog"))
            .PostConfigure(o =>
            {
                o.DataDirectory = Path.GetFullPath(o.DataDirectory);
                if (!explicitReplication)
                {
                    o.Replication.Mode = DefaultReplication(settings, o.DataDirectory);
                }
            }));

        if (settings.Dashboard.Enabled)
        {
            silo.AddDashboard(o =>
            {
                o.CounterUpdateIntervalMs = settings.Dashboard.CounterUpdateIntervalMs;
                o.HistoryLength = settings.Dashboard.HistoryLength;
                o.HideTrace = settings.Dashboard.HideTrace;
            });
        }
    }

    /// <summary>
    /// Orleans Kubernetes hosting: the silo's name, namespace and advertised address come from <c>POD_NAME</c>,
    /// <c>POD_NAMESPACE</c> and <c>POD_IP</c> (the manifest sets them from the downward API; <c>ORLEANS_CLUSTER_ID</c> and
    /// <c>ORLEANS_SERVICE_ID</c>, when set, would override the ids), it listens on every interface, and its cluster agent
    /// labels the pod with the cluster and service ids and has a silo whose pod is gone declared dead. Membership itself
    /// is the Azure table (<see cref="ConfigureStorageMembership"/>).
    /// </summary>
    private static void ConfigureKubernetesHosting(ISiloBuilder silo, KubernetesSettings kubernetes)
    {
        silo.UseKubernetesHosting(options => options.Configure(o =>
        {
            // The agent builds its API client (by default KubernetesClientConfiguration.InClusterConfig) when the silo
            // starts and gives up the start when the API server does not answer (after MaxKubernetesApiRetryAttempts
            // tries, 1 s apart). Outside a cluster there is no in-cluster configuration (no KUBERNETES_SERVICE_HOST, no
            // service account token) and the start fails at once, so Silo:Kubernetes:KubeConfig names another API server.
            if (!string.IsNullOrWhiteSpace(kubernetes.KubeConfig))
            {
                var path = kubernetes.KubeConfig;
                o.GetClientConfiguration = () => k8s.KubernetesClientConfiguration.BuildConfigFromConfigFile(path);
            }
        }));

        // The pod IP is the address this silo advertises in the membership table. Kubernetes hosting sets it only when no
        // address was chosen before its post-configuration runs, but Orleans' own default (registered first) has by then
        // put the host's first IPv4 address there: the same thing in a pod with one interface, a different one where
        // the pod has several, and on one machine (KubernetesProcessTests) every silo's.
        var podIp = Environment.GetEnvironmentVariable(Orleans.Hosting.Kubernetes.KubernetesHostingOptions.PodIPEnvironmentVariable);
        var advertised = IPAddress.TryParse(podIp, out var parsed) ? parsed : null;
        var listen = string.IsNullOrWhiteSpace(kubernetes.ListenAddress) ? null : IPAddress.Parse(kubernetes.ListenAddress);
        silo.Configure<EndpointOptions>(o =>
        {
            if (advertised is not null)
            {
                o.AdvertisedIPAddress = advertised;
            }

            // Kubernetes hosting listens on every interface only where no listening endpoint was configured.
            if (listen is not null)
            {
                o.SiloListeningEndpoint = new IPEndPoint(listen, o.SiloPort);
                o.GatewayListeningEndpoint = new IPEndPoint(listen, o.GatewayPort);
            }
        });
    }

    /// <summary>
    /// What a cluster of data nodes needs besides a way to find each other (<c>AzureStorage</c> and <c>Kubernetes</c>
    /// clustering): the Azure Table membership, consumer checkpoints in Azure Blob storage, fast failure detection and
    /// the distributed grain directory without a range lease.
    /// </summary>
    private static void ConfigureStorageMembership(ISiloBuilder silo, SiloSettings settings)
    {
        silo.UseAzureStorageClustering(o =>
        {
            o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(settings.AzureStorage.ConnectionString);
            o.TableName = settings.AzureStorage.TableName;
        });

        // Consumer checkpoints and consumer groups' fences in Azure Blob storage of the same account: a checkpoint
        // grain may activate on any silo, so its state cannot live in one node's data directory.
        silo.AddAzureBlobGrainStorage(ConsumerCheckpoints.StorageName, o =>
        {
            o.BlobServiceClient = new Azure.Storage.Blobs.BlobServiceClient(settings.AzureStorage.ConnectionString);
            o.ContainerName = settings.AzureStorage.CheckpointContainer;
        });
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = settings.ProbeTimeout;
            o.NumMissedProbesLimit = settings.MissedProbesLimit;
        });

        // Orleans' default directory deactivates every activation whose directory entry lived on a silo that
        // died: one node's death restarted the shards and ordering replicas of the others, and a shard
        // deactivating with appends in flight waits for commits it can no longer receive (the log stalled
        // in ClusterProcessTests under load). The distributed directory recovers the dead silo's entries from
        // the survivors instead, so only the dead node's own grains go away.
#pragma warning disable ORLEANSEXP003 // experimental in Orleans 10: the behaviour above is what the log needs
        silo.AddDistributedGrainDirectory();
#pragma warning restore ORLEANSEXP003

        // After an ungraceful silo death the distributed directory refuses new registrations in the ranges the
        // dead silo owned for a lease (30 s by default), in case the "dead" silo still hosts activations. Our
        // data-holding grains run only at their node, whose files one process at a time can open, so a second
        // activation cannot exist there; the lease only delayed restarted nodes' shard replicas and ordering
        // replicas by 20 s and more (measured in ClusterProcessTests).
        silo.Configure<GrainDirectoryOptions>(o => o.RangeLeaseDuration = TimeSpan.Zero);
    }

    /// <summary>Cluster and service ids and the silo and gateway ports from <c>Silo</c> settings (Kubernetes hosting supplies the address itself).</summary>
    private static void ConfigureIdsAndPorts(ISiloBuilder silo, SiloSettings settings, IPAddress? advertised)
    {
        silo.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = settings.ClusterId;
            o.ServiceId = settings.ServiceId;
        });
        silo.Configure<EndpointOptions>(o =>
        {
            if (advertised is not null)
            {
                o.AdvertisedIPAddress = advertised;
            }

            o.SiloPort = settings.SiloPort;
            o.GatewayPort = settings.GatewayPort;
        });
    }

    /// <summary>
    /// The ordering layer when <c>SpecLog:Replication:Mode</c> is not set: the mode an existing data directory was
    /// written with; for a new one, <see cref="SequencerReplication.Single"/> with localhost clustering (one silo, where
    /// replicas could not be placed on distinct silos: measured, Copilot there costs 1.95–2.3× (three runs) the single sequencer's
    /// append latency for no protection) and <see cref="SequencerReplication.Copilot"/> otherwise.
    /// </summary>
    internal static SequencerReplication DefaultReplication(SiloSettings settings, string dataDirectory) =>
        SpecLog.Server.Hosting.OrderingModeGuard.Detect(dataDirectory)
        ?? (settings.Clustering == ClusteringMode.Localhost ? SequencerReplication.Single : SequencerReplication.Copilot);

    private static void ListenDashboard(KestrelServerOptions kestrel, DashboardSettings dashboard)
    {
        switch (dashboard.Host)
        {
            case "localhost" when dashboard.Port == 0:
                kestrel.Listen(IPAddress.Loopback, 0);
                break;
            case "localhost":
                kestrel.ListenLocalhost(dashboard.Port);
                break;
            case "*":
                kestrel.ListenAnyIP(dashboard.Port);
                break;
            default:
                kestrel.Listen(IPAddress.Parse(dashboard.Host), dashboard.Port);
                break;
        }
    }

    /// <summary>
    /// Activates the sequencer and every shard, so each recovers from disk now rather than at the first request; returns
    /// the records found. In a cluster with data nodes (<c>SpecLog:Nodes</c>) only this node's ordering replicas and
    /// shards: the others live on other nodes, which may not be up yet.
    /// </summary>
    private static async Task<long> ActivateLogAsync(IGrainFactory grains, SpecLogOptions options, SiloSettings settings, ILogger logger, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(settings.ActivationTimeout);
        if (options.Nodes.Count == 0)
        {
            var sequencer = await grains.GetGrain<ISequencerGrain>(0).GetStatusAsync().WaitAsync(cts.Token);
            var all = await Task.WhenAll(ShardKeys.All(options.ShardCount, options.EffectiveShardReplicas).Select(k => grains.GetGrain<IShardGrain>(k).GetStatusAsync()))
                .WaitAsync(cts.Token);
            var found = all.Sum(s => s.Replicas > 1 ? s.LogEntries : s.DurableRecords);
            LogActivated(logger, all.Length, sequencer.Windows, found, all.Sum(s => s.NoOpSlots));
            return found;
        }

        var (replicas, shardIds) = Holdings(options, settings.NodeName ?? "");
        await Task.WhenAll(replicas.Select(k => grains.GetGrain<ISequencerReplicaGrain>(k).GetStatusAsync())).WaitAsync(cts.Token);
        var shards = await Task.WhenAll(shardIds.Select(k => grains.GetGrain<IShardGrain>(k).GetStatusAsync())).WaitAsync(cts.Token);
        var records = shards.Sum(s => s.Replicas > 1 ? s.LogEntries : s.DurableRecords);
        LogActivatedNode(logger, settings.NodeName ?? "", string.Join(",", replicas), DescribeShards(shardIds, options), records, shards.Sum(s => s.NoOpSlots));
        return records;
    }

    /// <summary>The ordering replicas and shards whose data lives on <paramref name="node"/> (<c>SpecLog:Nodes</c> set).</summary>
    private static (List<int> Replicas, List<long> Shards) Holdings(SpecLogOptions options, string node) => (
        DataHomePlacementDirector.KeysOn(node, options.Replication.IsReplicated ? options.Replication.Replicas : 0, options.Nodes).ToList(),
        DataHomePlacementDirector.ShardReplicasOn(node, options.ShardCount, options.EffectiveShardReplicas, options.Nodes).ToList());

    /// <summary>Shard replica keys as operators read them: "3" for an unreplicated shard, "3/1" for replica 1 of shard 3.</summary>
    private static string DescribeShards(IEnumerable<long> keys, SpecLogOptions options) =>
        string.Join(", ", keys.Select(k => options.EffectiveShardReplicas > 1 ? $"{ShardKeys.ShardOf(k)}/{ShardKeys.ReplicaOf(k)}" : $"{ShardKeys.ShardOf(k)}"));

    private static void PrintBanner(IHost host, string environment, SiloSettings settings, SpecLogOptions options, long recovered)
    {
        var silo = host.Services.GetRequiredService<ILocalSiloDetails>();
        var gateway = silo.GatewayAddress?.Endpoint.ToString() ?? "(none)";
        var dashboard = "off";
        var logPage = "";
        var health = "off (served with the dashboard)";
        if (settings.Dashboard.Enabled)
        {
            var addresses = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
            var root = (addresses?.FirstOrDefault() ?? $"http://{settings.Dashboard.Host}:{settings.Dashboard.Port}").TrimEnd('/');
            dashboard = root + settings.Dashboard.Path;
            logPage = $"  log page: {root}{settings.Dashboard.LogPath} (shards, windows, ordering layer, subscribers; linked from the dashboard)"
                + (string.IsNullOrEmpty(settings.Dashboard.Username) ? "" : $", both ask for user '{settings.Dashboard.Username}'");
            health = $"{root}{HealthEndpoints.Liveness} (live), {root}{HealthEndpoints.Readiness} (ready)"
                + (settings.Telemetry.Prometheus ? $"; metrics {root}{settings.Telemetry.PrometheusPath} (Prometheus)" : "");
        }

        var ordering = options.Ordering;
        var mode = ordering.Mode == OrderingMode.FixAnte ? "FixAnte (speculative)" : ordering.Mode.ToString();
        Console.WriteLine($"SpecLog silo up: gateway {gateway}, dashboard {dashboard}, data {options.DataDirectory}");
        if (logPage.Length > 0)
        {
            Console.WriteLine(logPage);
        }

        Console.WriteLine($"  health: {health}");
        Console.WriteLine($"  cluster '{settings.ClusterId}' service '{settings.ServiceId}' ({settings.Clustering} clustering), silo {silo.SiloAddress.Endpoint}, environment {environment}");
        if (options.Nodes.Count > 0)
        {
            var node = settings.NodeName ?? "";
            var (replicas, shards) = Holdings(options, node);
            Console.WriteLine(options.Nodes.Contains(node)
                ? $"  node '{node}' of [{string.Join(", ", options.Nodes)}]: holds shards [{DescribeShards(shards, options)}]{(options.EffectiveShardReplicas > 1 ? " (shard/replica)" : "")} and ordering replicas [{string.Join(", ", replicas)}]"
                : $"  node '{node}' is not one of SpecLog:Nodes [{string.Join(", ", options.Nodes)}]: it holds no data (a gateway only)");
        }

        Console.WriteLine($"  log: {options.ShardCount} shards{(options.EffectiveShardReplicas > 1 ? $" of {options.EffectiveShardReplicas} replicas ({options.ShardDurability} durability)" : "")}, {mode}, T_ord {ordering.OrderingInterval.TotalMilliseconds} ms, W {ordering.CutsPerWindow}, fsync {(options.Fsync ? "on" : "OFF")}, {recovered} {(options.EffectiveShardReplicas > 1 ? "log entries" : "records")} on disk");
        Console.WriteLine($"  ordering layer: {options.Replication.Mode}{(options.Replication.IsReplicated ? $", {options.Replication.Replicas} replicas" : "")} (SpecLog:Replication:Mode sets it; unset, an existing data directory keeps its mode and a new one-silo localhost cluster uses Single)");
        Console.WriteLine("  Ctrl+C (SIGINT) or SIGTERM stops the silo gracefully.");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Starting SpecLog silo (environment {Environment}, data {DataDirectory}, {Clustering} clustering)")]
    private static partial void LogStarting(ILogger logger, string environment, string dataDirectory, ClusteringMode clustering);

    [LoggerMessage(Level = LogLevel.Information, Message = "Log activated: {Shards} shards, {Windows} windows, {Records} records and {NoOpSlots} no-op slots on disk")]
    private static partial void LogActivated(ILogger logger, int shards, long windows, long records, long noOpSlots);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {Node} activated its ordering replicas [{Replicas}] and shards [{Shards}]: {Records} records and {NoOpSlots} no-op slots on disk")]
    private static partial void LogActivatedNode(ILogger logger, string node, string replicas, string shards, long records, long noOpSlots);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The silo failed to start")]
    private static partial void LogStartFailed(ILogger logger, Exception e);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The silo cannot start: {Reason}")]
    private static partial void LogCannotStart(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Activating the sequencer and shards failed")]
    private static partial void LogActivationFailed(ILogger logger, Exception e);

    [LoggerMessage(Level = LogLevel.Information, Message = "SpecLog silo stopped")]
    private static partial void LogStopped(ILogger logger);
}
