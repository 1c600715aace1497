using System.Net;

namespace SpecLog.Silo;

/// <summary>How a silo finds the other members of its cluster.</summary>
internal enum ClusteringMode
{
    /// <summary>A single silo on the loopback interface (Orleans localhost clustering); clients connect to 127.0.0.1.</summary>
    Localhost = 0,

    /// <summary>
    /// Orleans Kubernetes hosting (pod name, namespace and IP from the environment, listening on every interface) with
    /// the membership in an Azure Storage table, as <see cref="AzureStorage"/>: one silo per StatefulSet pod.
    /// </summary>
    Kubernetes = 1,

    /// <summary>
    /// A cluster of silo processes (on one machine or many) whose membership table is an Azure Storage table
    /// (<c>Microsoft.Orleans.Clustering.AzureStorage</c>; the Azurite emulator for development).
    /// </summary>
    AzureStorage = 2,
}

/// <summary>Settings of the silo process itself (the <c>Silo</c> configuration section); the log's own settings are the <c>SpecLog</c> section.</summary>
internal sealed class SiloSettings
{
    /// <summary>The configuration section these settings are bound from.</summary>
    public const string SectionName = "Silo";

    /// <summary>Default port for silo-to-silo traffic.</summary>
    public const int DEFAULT_SILO_PORT = 11111;

    /// <summary>Default port clients connect to.</summary>
    public const int DEFAULT_GATEWAY_PORT = 30000;

    /// <summary>Default cluster id (the Orleans localhost default, so a plain <c>UseLocalhostClustering()</c> client connects).</summary>
    public const string DEFAULT_CLUSTER_ID = "dev";

    /// <summary>Default service id (the Orleans localhost default).</summary>
    public const string DEFAULT_SERVICE_ID = "dev";

    /// <summary>Default time a graceful shutdown may take before the process gives up waiting.</summary>
    public static readonly TimeSpan DEFAULT_SHUTDOWN_TIMEOUT = TimeSpan.FromSeconds(30);

    /// <summary>Default time the start-up activation of the sequencer and shards may take.</summary>
    public static readonly TimeSpan DEFAULT_ACTIVATION_TIMEOUT = TimeSpan.FromSeconds(30);

    /// <summary>How the silo finds its cluster.</summary>
    public ClusteringMode Clustering { get; set; } = ClusteringMode.Localhost;

    /// <summary>Port for silo-to-silo traffic.</summary>
    public int SiloPort { get; set; } = DEFAULT_SILO_PORT;

    /// <summary>Port Orleans clients connect to.</summary>
    public int GatewayPort { get; set; } = DEFAULT_GATEWAY_PORT;

    /// <summary>Orleans cluster id; clients must use the same one.</summary>
    public string ClusterId { get; set; } = DEFAULT_CLUSTER_ID;

    /// <summary>Orleans service id; must stay the same across restarts of one deployment.</summary>
    public string ServiceId { get; set; } = DEFAULT_SERVICE_ID;

    /// <summary>
    /// This silo's node name (Orleans <c>SiloOptions.SiloName</c>): the identity under which it holds data, listed in
    /// <c>SpecLog:Nodes</c>. Stays the same across restarts of the node, whatever its address. Empty: the machine name.
    /// </summary>
    public string? NodeName { get; set; }

    /// <summary><c>AzureStorage</c> clustering: the IP address other silos and clients reach this silo at (default 127.0.0.1).</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    /// <summary><c>AzureStorage</c> and <c>Kubernetes</c> clustering: the storage account holding the membership table.</summary>
    public AzureStorageSettings AzureStorage { get; set; } = new();

    /// <summary><c>Kubernetes</c> clustering: how Orleans Kubernetes hosting reaches the API server and where the silo listens.</summary>
    public KubernetesSettings Kubernetes { get; set; } = new();

    /// <summary>
    /// <c>AzureStorage</c> and <c>Kubernetes</c> clustering: how often silos probe each other (Orleans <c>ClusterMembershipOptions.ProbeTimeout</c>).
    /// A silo missing <see cref="MissedProbesLimit"/> probes in a row is declared dead, and only then do directory
    /// entries on it move (Orleans' defaults, 5 s and 3, take 15 s and more). Shard replicas and ordering replicas
    /// detect a dead peer themselves within their election timeouts; this bounds what still waits for membership.
    /// </summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary><c>AzureStorage</c> and <c>Kubernetes</c> clustering: missed probes after which a silo is suspected (see <see cref="ProbeTimeout"/>).</summary>
    public int MissedProbesLimit { get; set; } = 2;

    /// <summary>Whether the sequencer and every shard are activated (and so recover from disk) right after start.</summary>
    public bool ActivateLogOnStart { get; set; } = true;

    /// <summary>How long the start-up activation may take before the silo gives up and exits.</summary>
    public TimeSpan ActivationTimeout { get; set; } = DEFAULT_ACTIVATION_TIMEOUT;

    /// <summary>How long a graceful shutdown (Ctrl+C, SIGTERM) may take.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = DEFAULT_SHUTDOWN_TIMEOUT;

    /// <summary>Whether to take an exclusive lock file in the data directory so two silos never share it.</summary>
    public bool LockDataDirectory { get; set; } = true;

    /// <summary>The Orleans dashboard.</summary>
    public DashboardSettings Dashboard { get; set; } = new();

    /// <summary>Metrics export (Prometheus scrape endpoint, OTLP).</summary>
    public Observability.TelemetrySettings Telemetry { get; set; } = new();

    /// <summary>Every problem with these settings, each naming the setting.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>(Telemetry.Validate());
        if (SiloPort is < 1 or > 65535)
        {
            errors.Add($"Silo:SiloPort must be in [1, 65535] (got {SiloPort}).");
        }

        if (GatewayPort is < 1 or > 65535)
        {
            errors.Add($"Silo:GatewayPort must be in [1, 65535] (got {GatewayPort}).");
        }

        if (SiloPort == GatewayPort)
        {
            errors.Add($"Silo:SiloPort and Silo:GatewayPort must differ (both {SiloPort}).");
        }

        if (string.IsNullOrWhiteSpace(ClusterId) || string.IsNullOrWhiteSpace(ServiceId))
        {
            errors.Add("Silo:ClusterId and Silo:ServiceId must be set.");
        }

        if (Clustering is ClusteringMode.AzureStorage or ClusteringMode.Kubernetes)
        {
            if (ProbeTimeout <= TimeSpan.Zero || MissedProbesLimit < 1)
            {
                errors.Add($"Silo:ProbeTimeout must be positive and Silo:MissedProbesLimit at least 1 (got {ProbeTimeout} and {MissedProbesLimit}).");
            }

            if (string.IsNullOrWhiteSpace(AzureStorage.ConnectionString))
            {
                errors.Add(Clustering == ClusteringMode.Kubernetes
                    ? "Silo:AzureStorage:ConnectionString must be set with Silo:Clustering=Kubernetes: the membership table's storage account (the manifest takes it from the Secret speclog-storage, key connection-string, as SPECLOG_Silo__AzureStorage__ConnectionString)."
                    : "Silo:AzureStorage:ConnectionString must be set with Silo:Clustering=AzureStorage (\"UseDevelopmentStorage=true\" for a local Azurite).");
            }

            if (string.IsNullOrWhiteSpace(NodeName))
            {
                errors.Add($"Silo:NodeName must be set with Silo:Clustering={Clustering}: it names the node whose data this silo holds (one of SpecLog:Nodes{(Clustering == ClusteringMode.Kubernetes ? "; the manifest gives each pod its pod name" : "")}).");
            }
        }

        if (Clustering == ClusteringMode.AzureStorage && !IPAddress.TryParse(AdvertisedAddress, out _))
        {
            errors.Add($"Silo:AdvertisedAddress must be an IP address (got '{AdvertisedAddress}').");
        }

        if (Clustering == ClusteringMode.Kubernetes)
        {
            errors.AddRange(Kubernetes.Validate());
        }

        if (ActivationTimeout <= TimeSpan.Zero || ShutdownTimeout <= TimeSpan.Zero)
        {
            errors.Add("Silo:ActivationTimeout and Silo:ShutdownTimeout must be positive.");
        }

        if (Dashboard.Enabled)
        {
            if (Dashboard.Port is < 0 or > 65535)
            {
                errors.Add($"Silo:Dashboard:Port must be in [0, 65535] (got {Dashboard.Port}).");
            }

            if (Dashboard.Port == GatewayPort || Dashboard.Port == SiloPort)
            {
                errors.Add($"Silo:Dashboard:Port {Dashboard.Port} collides with an Orleans port.");
            }

            if (!Dashboard.Path.StartsWith('/'))
            {
                errors.Add($"Silo:Dashboard:Path must start with '/' (got '{Dashboard.Path}').");
            }

            if (Dashboard.Host is not ("localhost" or "*") && !IPAddress.TryParse(Dashboard.Host, out _))
            {
                errors.Add($"Silo:Dashboard:Host must be 'localhost', '*' or an IP address (got '{Dashboard.Host}').");
            }

            if (!Dashboard.LogPath.StartsWith('/') || Dashboard.LogPath.Length < 2 || Dashboard.LogPath.TrimEnd('/') == Dashboard.Path.TrimEnd('/'))
            {
                errors.Add($"Silo:Dashboard:LogPath must start with '/', name a path of its own and differ from Silo:Dashboard:Path (got '{Dashboard.LogPath}').");
            }

            if (string.IsNullOrEmpty(Dashboard.Username) != string.IsNullOrEmpty(Dashboard.Password))
            {
                errors.Add("Silo:Dashboard:Username and Silo:Dashboard:Password go together: set both (the password through Silo__Dashboard__Password or a secret) or neither.");
            }
            else if (!Dashboard.LoopbackOnly && string.IsNullOrEmpty(Dashboard.Username) && !Dashboard.AllowAnonymous)
            {
                errors.Add($"The dashboard listens on '{Dashboard.Host}', beyond localhost, without credentials: set Silo:Dashboard:Username and Silo:Dashboard:Password "
                    + "(HTTP Basic; serve it through TLS), or Silo:Dashboard:AllowAnonymous=true when something in front authenticates.");
            }

            if (Dashboard.CounterUpdateIntervalMs < 1000)
            {
                errors.Add($"Silo:Dashboard:CounterUpdateIntervalMs must be at least 1000 (got {Dashboard.CounterUpdateIntervalMs}).");
            }
        }

        return errors;
    }
}

/// <summary>Settings of the Orleans dashboard (<c>Silo:Dashboard</c>).</summary>
internal sealed class DashboardSettings
{
    /// <summary>Default HTTP port of the dashboard.</summary>
    public const int DEFAULT_PORT = 8080;

    /// <summary>Default interface the dashboard listens on: loopback only.</summary>
    public const string DEFAULT_HOST = "localhost";

    /// <summary>Default URL path of the dashboard.</summary>
    public const string DEFAULT_PATH = "/dashboard";

    /// <summary>Whether the dashboard (and with it the HTTP server) runs at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>HTTP port; 0 picks a free one (printed at start).</summary>
    public int Port { get; set; } = DEFAULT_PORT;

    /// <summary>Interface to listen on: <c>localhost</c> (loopback), <c>*</c> (every interface) or an IP address.</summary>
    public string Host { get; set; } = DEFAULT_HOST;

    /// <summary>URL path the dashboard is served under; <c>/</c> redirects there.</summary>
    public string Path { get; set; } = DEFAULT_PATH;

    /// <summary>Milliseconds between metric samples (at least 1000).</summary>
    public int CounterUpdateIntervalMs { get; set; } = 1000;

    /// <summary>Metric samples kept for the charts.</summary>
    public int HistoryLength { get; set; } = 100;

    /// <summary>Whether to disable the dashboard's live log-stream page.</summary>
    public bool HideTrace { get; set; }

    /// <summary>Default <see cref="LogPath"/>.</summary>
    public const string DEFAULT_LOG_PATH = "/speclog";

    /// <summary>Where the log's own page (shards, windows, ordering layer, subscribers) is served, beside the dashboard.</summary>
    public string LogPath { get; set; } = DEFAULT_LOG_PATH;

    /// <summary>User name the dashboard and the log page ask for (HTTP Basic); unset, they are open. Required when <see cref="Host"/> is not loopback, unless <see cref="AllowAnonymous"/>.</summary>
    public string? Username { get; set; }

    /// <summary>The password for <see cref="Username"/>; give it through an environment variable or a secret (<c>Silo__Dashboard__Password</c>), not a file in the image.</summary>
    public string? Password { get; set; }

    /// <summary>Serve the dashboard beyond localhost without credentials (e.g. behind a proxy that authenticates).</summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>Whether <see cref="Host"/> listens on loopback only.</summary>
    public bool LoopbackOnly => Host == "localhost" || (IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip));
}

/// <summary>The Azure Storage account of <c>AzureStorage</c> clustering (<c>Silo:AzureStorage</c>).</summary>
internal sealed class AzureStorageSettings
{
    /// <summary>Default table holding the membership rows.</summary>
    public const string DEFAULT_TABLE_NAME = "SpecLogMembership";

    /// <summary>Storage connection string; <c>UseDevelopmentStorage=true</c> is Azurite on its default ports.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Table holding the membership rows (one row per silo generation, keyed by the cluster id).</summary>
    public string TableName { get; set; } = DEFAULT_TABLE_NAME;

    /// <summary>Default blob container of consumer checkpoints.</summary>
    public const string DEFAULT_CHECKPOINT_CONTAINER = "speclog-checkpoints";

    /// <summary>Blob container holding consumer checkpoints (Orleans grain state, one blob per consumer partition).</summary>
    public string CheckpointContainer { get; set; } = DEFAULT_CHECKPOINT_CONTAINER;
}

/// <summary>Orleans Kubernetes hosting in <c>Kubernetes</c> clustering (<c>Silo:Kubernetes</c>).</summary>
internal sealed class KubernetesSettings
{
    /// <summary>
    /// A kubeconfig file through which Orleans' Kubernetes cluster agent reaches the API server. Empty (the default, and
    /// what a pod wants): the in-cluster configuration, from <c>KUBERNETES_SERVICE_HOST</c> and the pod's service account
    /// token. Outside a cluster that configuration does not exist and the silo could not start (the agent builds its API
    /// client when the silo starts), so a silo run elsewhere (a developer's machine against a cluster, the process test
    /// against its stand-in API server) names a kubeconfig here.
    /// </summary>
    public string? KubeConfig { get; set; }

    /// <summary>
    /// The IP address the silo-to-silo and gateway ports listen on. Empty (the default): every interface, as Kubernetes
    /// hosting does, which is right in a pod; the address advertised to others is the pod IP (<c>POD_IP</c>) either way.
    /// </summary>
    public string? ListenAddress { get; set; }

    /// <summary>Every problem with these settings, each naming the setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (!string.IsNullOrWhiteSpace(ListenAddress) && !IPAddress.TryParse(ListenAddress, out _))
        {
            yield return $"Silo:Kubernetes:ListenAddress must be an IP address (got '{ListenAddress}').";
        }

        if (!string.IsNullOrWhiteSpace(KubeConfig) && !File.Exists(KubeConfig))
        {
            yield return $"Silo:Kubernetes:KubeConfig names a file that does not exist ('{KubeConfig}').";
        }
    }
}
