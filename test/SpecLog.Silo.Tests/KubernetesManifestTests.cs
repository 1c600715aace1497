using System.Text.RegularExpressions;
using System.Xml.Linq;
using k8s;
using Microsoft.Extensions.Configuration;
using k8s.Models;
using Orleans.Hosting.Kubernetes;
using SpecLog.Server;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The Kubernetes deployment in <c>silo-config/kubernetes/</c> read as typed objects (no cluster needed) and checked
/// against the silo: the objects a three-silo deployment needs, in one namespace and referring to each other; the
/// StatefulSet's pods as data nodes with a volume each at the configured data directory; probes on the silo's health
/// endpoints; a disruption budget that keeps a majority; hardened pods running the csproj's image (built by the
/// Dockerfile); and every environment variable a setting the silo reads, bound through the silo's own configuration
/// code, with every setting Kubernetes mode needs supplied.
/// </summary>
public sealed class KubernetesManifestTests
{
    private const string SamplePodIp = "10.244.1.7";

    private static readonly KubernetesManifest Manifest = KubernetesManifest.Load();

    [Fact]
    public void Every_object_of_a_deployment_is_there_in_one_namespace_and_they_refer_to_each_other()
    {
        var ns = Manifest.Single<V1Namespace>().Metadata.Name;
        Assert.All(Manifest.Objects.Where(o => o.Object is not V1Namespace), o =>
            Assert.True(((IMetadata<V1ObjectMeta>)o.Object).Metadata.NamespaceProperty == ns, $"{o.File}: {o.Object.Kind} is not in namespace {ns}"));

        var sts = Manifest.StatefulSet;
        var podLabels = sts.Spec.Template.Metadata.Labels;
        Assert.True(Selects(sts.Spec.Selector.MatchLabels, podLabels), "the StatefulSet's selector does not select its own pods");

        // Headless service for the StatefulSet, a gateway service; both select the silo pods and name container ports.
        var services = Manifest.All<V1Service>().ToList();
        var headless = Assert.Single(services, s => s.Spec.ClusterIP == "None");
        Assert.Equal(sts.Spec.ServiceName, headless.Metadata.Name);
        var gateway = Assert.Single(services, s => s.Spec.ClusterIP != "None");
        var portNames = Manifest.SiloContainer.Ports.Select(p => p.Name).ToHashSet();
        Assert.All(services, s =>
        {
            Assert.True(Selects(s.Spec.Selector, podLabels), $"service {s.Metadata.Name} does not select the silo pods");
            Assert.All(s.Spec.Ports, p => Assert.True(portNames.Contains(p.TargetPort?.Value ?? p.Name), $"service {s.Metadata.Name} port {p.Name} targets no container port"));
        });
        Assert.Contains(gateway.Spec.Ports, p => p.TargetPort?.Value == "gateway");
        Assert.Contains(gateway.Spec.Ports, p => p.TargetPort?.Value == "dashboard");

        // The service account the pods run as may do what Orleans' Kubernetes cluster agent does with pods.
        var account = Manifest.Single<V1ServiceAccount>();
        Assert.Equal(account.Metadata.Name, sts.Spec.Template.Spec.ServiceAccountName);
        Assert.NotEqual(false, sts.Spec.Template.Spec.AutomountServiceAccountToken);
        Assert.NotEqual(false, account.AutomountServiceAccountToken);
        var role = Manifest.Single<V1Role>();
        var binding = Manifest.Single<V1RoleBinding>();
        Assert.Equal(("Role", role.Metadata.Name), (binding.RoleRef.Kind, binding.RoleRef.Name));
        Assert.Contains(binding.Subjects, s => s.Kind == "ServiceAccount" && s.Name == account.Metadata.Name && s.NamespaceProperty == ns);
        var pods = Assert.Single(role.Rules, r => r.Resources.Contains("pods"));
        Assert.Equal([""], pods.ApiGroups);
        Assert.Subset(pods.Verbs.ToHashSet(), new HashSet<string> { "get", "list", "watch", "patch" });

        // The silo pods carry the labels Orleans' agent lists them by, with the ids the silo is configured with.
        var settings = KubernetesManifest.Bind(Manifest.PodEnvironment(0, SamplePodIp));
        Assert.Equal(settings.Silo.ClusterId, podLabels[KubernetesHostingOptions.ClusterIdLabel]);
        Assert.Equal(settings.Silo.ServiceId, podLabels[KubernetesHostingOptions.ServiceIdLabel]);

        Assert.Single(Manifest.All<V1PodDisruptionBudget>());
        Assert.Equal(["speclog-dashboard", "speclog-storage"], Manifest.All<V1Secret>().Select(s => s.Metadata.Name).Order());
    }

    [Fact]
    public void The_statefulset_runs_at_least_three_data_nodes_each_with_its_own_volume_at_the_data_directory()
    {
        var sts = Manifest.StatefulSet;
        var replicas = sts.Spec.Replicas ?? 1;
        Assert.True(replicas >= 3, $"{replicas} replicas: a replicated log needs at least three silos");
        Assert.Equal("Parallel", sts.Spec.PodManagementPolicy);

        for (var pod = 0; pod < replicas; pod++)
        {
            var settings = KubernetesManifest.Bind(Manifest.PodEnvironment(pod, SamplePodIp));
            Assert.Equal("Kubernetes", settings.Environment);
            Assert.Equal(ClusteringMode.Kubernetes, settings.Silo.Clustering);

            // Every pod is one data node, under its pod name, and the nodes are exactly the StatefulSet's pods.
            Assert.Equal(Manifest.PodName(pod), settings.Silo.NodeName);
            Assert.Equal(Enumerable.Range(0, replicas).Select(Manifest.PodName), settings.Log.Nodes);

            // Shards replicated on three nodes, the Copilot ordering layer with a replica per node.
            Assert.Equal(3, settings.Log.EffectiveShardReplicas);
            Assert.Equal(SequencerReplication.Copilot, settings.Log.Replication.Mode);
            Assert.True(settings.Log.Replication.Replicas <= replicas, "more ordering replicas than silos");

            // The data directory lies on the pod's own persistent volume.
            var dataDirectory = settings.Log.DataDirectory;
            var mount = Manifest.SiloContainer.VolumeMounts.SingleOrDefault(m => IsUnder(dataDirectory, m.MountPath))
                ?? throw new Xunit.Sdk.XunitException($"SpecLog:DataDirectory {dataDirectory} is on no volume mount of the silo container");
            Assert.Contains(sts.Spec.VolumeClaimTemplates, t => t.Metadata.Name == mount.Name && t.Spec.AccessModes.Contains("ReadWriteOnce"));
            Assert.DoesNotContain(sts.Spec.Template.Spec.Volumes ?? [], v => v.Name == mount.Name);
        }
    }

    [Fact]
    public void Ports_and_probes_are_the_silos_own_and_a_stopping_pod_has_time_for_a_graceful_shutdown()
    {
        var settings = KubernetesManifest.Bind(Manifest.PodEnvironment(0, SamplePodIp)).Silo;
        var ports = Manifest.SiloContainer.Ports.ToDictionary(p => p.Name, p => p.ContainerPort);
        Assert.Equal(settings.SiloPort, ports["silo"]);
        Assert.Equal(settings.GatewayPort, ports["gateway"]);
        Assert.True(settings.Dashboard.Enabled, "the health endpoints are served by the dashboard's HTTP server");
        Assert.Equal(settings.Dashboard.Port, ports["dashboard"]);
        Assert.Equal("*", settings.Dashboard.Host); // probes come to the pod IP

        // The paths the silo maps (Observability/HealthEndpoints.cs).
        var health = File.ReadAllText(Path.Combine(AzuriteServer.RepositoryRoot(), "src", "SpecLog.Silo", "Observability", "HealthEndpoints.cs"));
        var liveness = Regex.Match(health, "Liveness = \"([^\"]+)\"").Groups[1].Value;
        var readiness = Regex.Match(health, "Readiness = \"([^\"]+)\"").Groups[1].Value;
        Assert.Equal(("/healthz", "/readyz"), (liveness, readiness));

        var container = Manifest.SiloContainer;
        AssertProbe(container.StartupProbe, liveness, "startup");
        AssertProbe(container.LivenessProbe, liveness, "liveness");
        AssertProbe(container.ReadinessProbe, readiness, "readiness");

        var grace = Manifest.StatefulSet.Spec.Template.Spec.TerminationGracePeriodSeconds;
        Assert.True(grace > settings.ShutdownTimeout.TotalSeconds, $"terminationGracePeriodSeconds {grace} does not leave Silo:ShutdownTimeout {settings.ShutdownTimeout} for the graceful stop");

        void AssertProbe(V1Probe? probe, string path, string what)
        {
            Assert.True(probe?.HttpGet is not null, $"no HTTP {what} probe");
            Assert.Equal(path, probe.HttpGet.Path);
            var port = probe.HttpGet.Port.Value;
            Assert.True(port == "dashboard" || port == settings.Dashboard.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), $"the {what} probe goes to port {port}, not the dashboard's");
        }
    }

    [Fact]
    public void The_disruption_budget_keeps_a_majority_of_the_silos_and_so_of_every_shards_replicas()
    {
        var sts = Manifest.StatefulSet;
        var replicas = sts.Spec.Replicas ?? 1;
        var pdb = Manifest.Single<V1PodDisruptionBudget>();
        Assert.True(Selects(pdb.Spec.Selector.MatchLabels, sts.Spec.Template.Metadata.Labels), "the PodDisruptionBudget does not select the silo pods");
        Assert.Null(pdb.Spec.Selector.MatchExpressions);

        var maxUnavailable = pdb.Spec.MaxUnavailable?.Value;
        var minAvailable = pdb.Spec.MinAvailable?.Value;
        Assert.True(maxUnavailable is null != (minAvailable is null), "the budget should set exactly one of maxUnavailable and minAvailable");
        Assert.DoesNotContain("%", maxUnavailable ?? minAvailable); // a percentage rounds in ways that may lose the majority
        var keptUp = maxUnavailable is not null ? replicas - int.Parse(maxUnavailable, System.Globalization.CultureInfo.InvariantCulture) : int.Parse(minAvailable!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(keptUp > replicas / 2, $"the budget keeps {keptUp} of {replicas} silos up: not a majority");

        // With a replica of every shard (and an ordering replica) on each silo, a majority of silos is a majority of each.
        var log = KubernetesManifest.Bind(Manifest.PodEnvironment(0, SamplePodIp)).Log;
        Assert.Equal(replicas, log.EffectiveShardReplicas);
        Assert.True(keptUp > log.Replication.Replicas / 2);
    }

    [Fact]
    public void Pods_run_hardened_with_limits_and_the_pinned_image_the_dockerfile_builds()
    {
        var pod = Manifest.StatefulSet.Spec.Template.Spec;
        var container = Manifest.SiloContainer;
        Assert.True(pod.SecurityContext.RunAsNonRoot, "the pod's securityContext.runAsNonRoot is not true");
        Assert.True(pod.SecurityContext.RunAsUser > 0, "runAsUser must be a numeric non-root uid");
        Assert.Equal("RuntimeDefault", pod.SecurityContext.SeccompProfile?.Type);
        var hardening = container.SecurityContext;
        Assert.True(hardening.AllowPrivilegeEscalation == false, "the container's allowPrivilegeEscalation is not false");
        Assert.True(hardening.ReadOnlyRootFilesystem, "the container's readOnlyRootFilesystem is not true");
        Assert.Equal(["ALL"], hardening.Capabilities.Drop);
        Assert.Null(hardening.Capabilities.Add);
        Assert.NotEqual(false, hardening.RunAsNonRoot);
        Assert.True(hardening.RunAsUser is null || hardening.RunAsUser == pod.SecurityContext.RunAsUser);
        Assert.NotEqual("Unconfined", hardening.SeccompProfile?.Type);

        // A read-only root: /tmp is a writable emptyDir (the data directory has its own volume).
        var tmp = Assert.Single(container.VolumeMounts, m => m.MountPath == "/tmp");
        Assert.NotNull(Assert.Single(pod.Volumes, v => v.Name == tmp.Name).EmptyDir);

        foreach (var resource in new[] { "cpu", "memory" })
        {
            Assert.True(container.Resources.Requests.ContainsKey(resource), $"no {resource} request");
            Assert.True(container.Resources.Limits.ContainsKey(resource), $"no {resource} limit");
        }

        // The image: the csproj's container name and tag, pinned, and built by the Dockerfile as the pods' user.
        var csproj = XDocument.Load(Path.Combine(AzuriteServer.RepositoryRoot(), "src", "SpecLog.Silo", "SpecLog.Silo.csproj"));
        string Property(string name) => csproj.Descendants(name).Single().Value;
        Assert.Equal($"{Property("ContainerRepository")}:{Property("ContainerImageTag")}", container.Image);
        var tag = container.Image[(container.Image.LastIndexOf(':') + 1)..];
        Assert.Matches(@"^\d+\.\d+\.\d+", tag);
        Assert.NotEqual("latest", tag);

        var dockerfile = File.ReadAllLines(Path.Combine(AzuriteServer.RepositoryRoot(), "src", "SpecLog.Silo", "Dockerfile"));
        var bases = dockerfile.Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).Select(l => l.Split(' ')[1]).ToList();
        Assert.True(bases.Count >= 2, "the Dockerfile should build in an SDK stage and run on a runtime image");
        Assert.All(bases, image => Assert.Matches(@":\d+\.\d+\.\d+", image));
        Assert.Contains(bases, image => image.StartsWith("mcr.microsoft.com/dotnet/aspnet:", StringComparison.Ordinal));
        Assert.Equal($"{pod.SecurityContext.RunAsUser}", dockerfile.Last(l => l.StartsWith("USER ", StringComparison.Ordinal))[5..].Split(':')[0]);
        Assert.Equal($"{pod.SecurityContext.RunAsUser}", Property("ContainerUser"));
        var exposed = dockerfile.Single(l => l.StartsWith("EXPOSE ", StringComparison.Ordinal))[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).Order();
        Assert.Equal(container.Ports.Select(p => p.ContainerPort).Order(), exposed);
    }

    [Fact]
    public void Every_environment_variable_is_a_setting_the_silo_reads_and_every_setting_kubernetes_needs_is_given()
    {
        var replicas = Manifest.StatefulSet.Spec.Replicas ?? 1;
        var env = Manifest.SiloContainer.Env.ToDictionary(e => e.Name);

        // What is not configuration is read by someone: the environment name by the silo, the pod's identity by Orleans
        // Kubernetes hosting (its own constants, so a rename in Orleans fails here).
        string[] hosting = [KubernetesHostingOptions.PodNameEnvironmentVariable, KubernetesHostingOptions.PodNamespaceEnvironmentVariable, KubernetesHostingOptions.PodIPEnvironmentVariable];
        Assert.All(env.Keys.Where(k => !k.StartsWith(SiloConfiguration.EnvironmentPrefix, StringComparison.Ordinal)), name =>
            Assert.True(name == "DOTNET_ENVIRONMENT" || hosting.Contains(name), $"{name} is neither a SPECLOG_ setting nor read by the silo or Orleans Kubernetes hosting"));
        Assert.Equal("metadata.name", env[KubernetesHostingOptions.PodNameEnvironmentVariable].ValueFrom?.FieldRef?.FieldPath);
        Assert.Equal("metadata.namespace", env[KubernetesHostingOptions.PodNamespaceEnvironmentVariable].ValueFrom?.FieldRef?.FieldPath);
        Assert.Equal("status.podIP", env[KubernetesHostingOptions.PodIPEnvironmentVariable].ValueFrom?.FieldRef?.FieldPath);

        // The Secret the connection string comes from is the manifests' (template) and has that key.
        var connection = env[SiloConfiguration.EnvironmentPrefix + "Silo__AzureStorage__ConnectionString"].ValueFrom.SecretKeyRef;
        var secret = Manifest.SecretTemplateValue(connection.Name, connection.Key);

        // The dashboard listens beyond localhost in a pod, so its credentials come from a Secret too.
        var user = env[SiloConfiguration.EnvironmentPrefix + "Silo__Dashboard__Username"].ValueFrom.SecretKeyRef;
        var password = env[SiloConfiguration.EnvironmentPrefix + "Silo__Dashboard__Password"].ValueFrom.SecretKeyRef;

        for (var pod = 0; pod < replicas; pod++)
        {
            var environment = Manifest.PodEnvironment(pod, SamplePodIp);
            var problems = KubernetesManifest.SettingProblems(environment);
            Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));

            var settings = KubernetesManifest.Bind(environment);
            Assert.Empty(settings.Silo.Validate());
            Assert.Equal(secret, settings.Silo.AzureStorage.ConnectionString);
            Assert.False(settings.Silo.Dashboard.LoopbackOnly);
            Assert.Equal(Manifest.SecretTemplateValue(user.Name, user.Key), settings.Silo.Dashboard.Username);
            Assert.Equal(Manifest.SecretTemplateValue(password.Name, password.Key), settings.Silo.Dashboard.Password);
            Assert.Equal(Manifest.PodName(pod), settings.Silo.NodeName);
            Assert.Equal(Manifest.PodName(pod), environment[KubernetesHostingOptions.PodNameEnvironmentVariable]);
            Assert.True(string.IsNullOrEmpty(settings.Silo.Kubernetes.KubeConfig), "in a pod the cluster agent uses the in-cluster configuration");
            Assert.True(string.IsNullOrEmpty(settings.Silo.Kubernetes.ListenAddress), "in a pod the silo listens on every interface");

            // Nor do appsettings.json and appsettings.Kubernetes.json name a setting that does not exist.
            settings.Configuration.GetSection(SiloSettings.SectionName).Get<SiloSettings>(o => o.ErrorOnUnknownConfiguration = true);
            settings.Configuration.GetSection("SpecLog").Get<SpecLogOptions>(o => o.ErrorOnUnknownConfiguration = true);
        }
    }

    [Fact]
    public void The_environment_check_reports_a_renamed_or_misspelt_setting()
    {
        var environment = Manifest.PodEnvironment(1, SamplePodIp);
        environment["SPECLOG_Silo__NodeNam"] = "speclog-silo-1";              // a typo
        environment["SPECLOG_SpecLog__ShardReplica"] = "3";                   // a setting that does not exist
        environment["SPECLOG_Kubernetes__ListenAddress"] = "10.0.0.1";        // a section the silo does not bind
        var problems = KubernetesManifest.SettingProblems(environment);
        Assert.Contains(problems, p => p.StartsWith("SPECLOG_Silo__NodeNam:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("SPECLOG_SpecLog__ShardReplica:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("SPECLOG_Kubernetes__ListenAddress:", StringComparison.Ordinal));
        Assert.Equal(3, problems.Count);
    }

    private static bool Selects(IDictionary<string, string>? selector, IDictionary<string, string> labels) =>
        selector is { Count: > 0 } && selector.All(s => labels.TryGetValue(s.Key, out var v) && v == s.Value);

    private static bool IsUnder(string path, string folder) =>
        Path.GetRelativePath(folder, path) is var relative && relative != ".." && !relative.StartsWith("../", StringComparison.Ordinal) && !Path.IsPathRooted(relative);
}
