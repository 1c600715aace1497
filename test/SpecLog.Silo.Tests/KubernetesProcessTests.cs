using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Azure.Data.Tables;
using k8s.Models;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The Kubernetes deployment without Kubernetes: three silo processes started exactly as the manifest's StatefulSet
/// starts its pods — the silo container's environment from <c>silo-config/kubernetes/statefulset.yaml</c>, environment
/// <c>Kubernetes</c> (so the same <c>appsettings.Kubernetes.json</c>), Orleans Kubernetes hosting and Azure Table
/// membership — must form one cluster that serves the log.
/// <para>
/// What Kubernetes would supply is supplied here: the downward-API fields (<c>metadata.name</c> → <c>speclog-silo-K</c>,
/// <c>metadata.namespace</c>, <c>status.podIP</c> → 127.0.10.K+1, a loopback address of its own per pod, so every
/// process keeps the manifest's ports 11111, 30000 and 8080), the Secret's connection string (→ the test's Azurite), the
/// pod's persistent volume (→ a folder), and the API server (→ <see cref="FakeKubernetesApi"/>). The only settings
/// that differ from a pod's, each a documented silo setting:
/// <list type="bullet">
/// <item><c>Silo:Kubernetes:KubeConfig</c> names a kubeconfig of the stand-in API server: outside a cluster there is no
/// in-cluster configuration (no <c>KUBERNETES_SERVICE_HOST</c>, no service account token), and Orleans' cluster agent
/// would fail the silo's start without an API server (it reads and labels its pod and lists the cluster's pods).</item>
/// <item><c>Silo:Kubernetes:ListenAddress</c> and <c>Silo:Dashboard:Host</c> are the pod IP instead of every interface: in
/// Kubernetes each pod has its own network namespace; on one machine three processes can share the ports only on
/// distinct addresses.</item>
/// <item><c>SpecLog:DataDirectory</c> is a folder of the test instead of <c>/data/speclog</c> on the pod's volume.</item>
/// </list>
/// </para>
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class KubernetesProcessTests(ITestOutputHelper log)
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(120);

    [Fact(Timeout = 360_000)]
    public async Task Three_silos_started_as_the_manifest_starts_its_pods_form_one_cluster_that_serves_the_log()
    {
        var ct = TestContext.Current.CancellationToken;
        var manifest = KubernetesManifest.Load();
        var sts = manifest.StatefulSet;
        var replicas = sts.Spec.Replicas ?? 1;
        var ns = sts.Metadata.NamespaceProperty;
        static string PodIp(int pod) => $"127.0.10.{pod + 1}";

        using var temp = new TempFolder("speclog-k8s-");
        var output = new ConcurrentQueue<string>();
        var silos = new List<SiloProcess>();
        var started = Stopwatch.StartNew();
        await using var azurite = await AzuriteServer.StartAsync(ct);

        // The pods the StatefulSet controller would create: the template's labels, their names and IPs.
        await using var api = new FakeKubernetesApi(ns, Enumerable.Range(0, replicas).Select(pod => new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = manifest.PodName(pod),
                NamespaceProperty = ns,
                Labels = new Dictionary<string, string>(sts.Spec.Template.Metadata.Labels) { ["statefulset.kubernetes.io/pod-name"] = manifest.PodName(pod) },
            },
            Status = new V1PodStatus { Phase = "Running", PodIP = PodIp(pod) },
        }));
        var kubeConfig = Path.Combine(temp.Path, "kubeconfig");
        api.WriteKubeConfig(kubeConfig);

        try
        {
            var settings = new List<BoundSettings>();
            for (var pod = 0; pod < replicas; pod++)
            {
                var environment = manifest.PodEnvironment(pod, PodIp(pod), (_, _) => azurite.ConnectionString);
                environment["SPECLOG_Silo__Kubernetes__KubeConfig"] = kubeConfig;
                environment["SPECLOG_Silo__Kubernetes__ListenAddress"] = PodIp(pod);
                environment["SPECLOG_Silo__Dashboard__Host"] = PodIp(pod);
                environment["SPECLOG_SpecLog__DataDirectory"] = Path.Combine(temp.Path, manifest.PodName(pod), "speclog");
                Assert.Empty(KubernetesManifest.SettingProblems(environment)); // the overrides are settings the silo reads
                var bound = KubernetesManifest.Bind(environment);
                Assert.Equal(ClusteringMode.Kubernetes, bound.Silo.Clustering);
                settings.Add(bound);
                silos.Add(SiloProcess.StartWith(manifest.PodName(pod), temp.Path, output, (bound.Silo.SiloPort, bound.Silo.GatewayPort), environment));
            }

            await Waits.UntilAsync(() => silos.All(s => s.IsUp) || silos.Any(s => s.HasExited), "every silo up", StepTimeout, ct);
            Assert.True(silos.All(s => !s.HasExited), "a silo exited at start");
            log.WriteLine($"{replicas} silos up {started.Elapsed.TotalSeconds:0.0} s after the test began (Azurite included)");

            // Every pod's readiness probe, as the kubelet sends it: the pod IP and the dashboard port.
            var ready = Enumerable.Range(0, replicas).Select(pod => $"http://{PodIp(pod)}:{settings[pod].Silo.Dashboard.Port}/readyz").ToList();
            var answers = Array.Empty<(HttpStatusCode Code, string Text)>();
            await Waits.UntilAsync(
                async () => (answers = await Task.WhenAll(ready.Select(url => SiloHttp.GetAsync(url, ct)))).All(a => a.Code == HttpStatusCode.OK),
                "every silo's /readyz 200",
                StepTimeout,
                ct);
            log.WriteLine($"every /readyz 200 after {started.Elapsed.TotalSeconds:0.0} s: {answers[0].Text}");

            // One membership table, one cluster: the three pods, active, at their pod IPs and the manifest's silo port.
            var table = new TableClient(azurite.ConnectionString, settings[0].Silo.AzureStorage.TableName);
            var active = new List<TableEntity>();
            await foreach (var row in table.QueryAsync<TableEntity>(cancellationToken: ct))
            {
                if (row.GetString("Status") == "Active")
                {
                    active.Add(row);
                }
            }

            Assert.Equal(Enumerable.Range(0, replicas).Select(manifest.PodName), active.Select(r => r.GetString("SiloName")).Order(StringComparer.Ordinal));
            Assert.Equal(Enumerable.Range(0, replicas).Select(PodIp), active.OrderBy(r => r.GetString("SiloName"), StringComparer.Ordinal).Select(r => r.GetString("Address")));
            Assert.All(active, r => Assert.Equal($"{settings[0].Silo.SiloPort}", $"{r["Port"]}")); // Orleans stores it as text
            Assert.Single(active.Select(r => r.PartitionKey).Distinct());

            // Orleans Kubernetes hosting ran against the API: each silo read its own pod and listed the cluster's.
            for (var pod = 0; pod < replicas; pod++)
            {
                Assert.Contains($"GET /api/v1/namespaces/{ns}/pods/{manifest.PodName(pod)}", api.Requests);
            }

            Assert.True(api.Requests.Count(r => r.StartsWith($"GET /api/v1/namespaces/{ns}/pods?", StringComparison.Ordinal) && !r.Contains("watch=true", StringComparison.Ordinal)) >= replicas, "not every silo listed the pods");

            // A client of the cluster (through the membership table, as a production client) appends and reads back.
            await using var client = await TestClient.ConnectClusterAsync(azurite.ConnectionString, settings[0].Silo.ClusterId, StepTimeout, ct);
            var texts = Enumerable.Range(0, 200).Select(i => $"k8s|{i}").ToList();
            var gsns = await Task.WhenAll(texts.Select(t => client.Log.AppendAsync(Encoding.UTF8.GetBytes(t), cancellationToken: ct)));
            Assert.Equal(texts.Count, gsns.Distinct().Count());
            var records = await client.Log.ReadRangeAsync(0, gsns.Max() + 1, ct);
            var atGsn = records.ToDictionary(r => r.Gsn, r => Encoding.UTF8.GetString(r.Payload.Span));
            Assert.All(texts.Zip(gsns), a => Assert.True(atGsn.TryGetValue(a.Second, out var text) && text == a.First, $"{a.First} acknowledged at GSN {a.Second} reads back as '{text}'"));
            log.WriteLine($"{texts.Count} appends read back at their positions; test {started.Elapsed.TotalSeconds:0.0} s");
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, output.TakeLast(300)));
            log.WriteLine("API requests: " + string.Join(" | ", api.Requests.Take(50)));
            throw;
        }
        finally
        {
            foreach (var silo in silos)
            {
                await silo.DisposeAsync();
            }
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_pod_whose_secret_gives_no_connection_string_stops_at_start_with_exit_code_2_naming_the_setting()
    {
        var ct = TestContext.Current.CancellationToken;
        var manifest = KubernetesManifest.Load();
        using var temp = new TempFolder("speclog-k8s-bad-");
        var environment = manifest.PodEnvironment(0, "127.0.10.4", (_, _) => ""); // the Secret's key is empty
        environment["SPECLOG_SpecLog__DataDirectory"] = Path.Combine(temp.Path, "data");
        var (code, output) = await RunToExitAsync(manifest, temp.Path, environment, ct);
        Assert.True(code == 2, $"exit code {code}:{Environment.NewLine}{output}");
        Assert.Contains("Silo:AzureStorage:ConnectionString must be set with Silo:Clustering=Kubernetes", output);
    }

    [Fact(Timeout = 120_000)]
    public async Task Outside_a_cluster_without_a_kubeconfig_the_silo_cannot_start_which_is_why_the_test_names_one()
    {
        var ct = TestContext.Current.CancellationToken;
        var manifest = KubernetesManifest.Load();
        using var temp = new TempFolder("speclog-k8s-nokube-");
        var environment = manifest.PodEnvironment(0, "127.0.10.5", (_, _) => "UseDevelopmentStorage=true");
        environment["SPECLOG_Silo__Kubernetes__ListenAddress"] = "127.0.10.5";
        environment["SPECLOG_Silo__Dashboard__Host"] = "127.0.10.5";
        environment["SPECLOG_SpecLog__DataDirectory"] = Path.Combine(temp.Path, "data");
        var (code, output) = await RunToExitAsync(manifest, temp.Path, environment, ct);
        Assert.True(code == 3, $"exit code {code}:{Environment.NewLine}{output}");
        Assert.Contains("Unable to load in-cluster configuration", output);
    }

    /// <summary>Starts one silo with <paramref name="environment"/> and waits until it exits; its exit code and output.</summary>
    private static async Task<(int Code, string Output)> RunToExitAsync(KubernetesManifest manifest, string folder, Dictionary<string, string> environment, CancellationToken ct)
    {
        var bound = KubernetesManifest.Bind(environment).Silo;
        var output = new ConcurrentQueue<string>();
        await using var silo = SiloProcess.StartWith(manifest.PodName(0), folder, output, (bound.SiloPort, bound.GatewayPort), environment);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(StepTimeout);
        await silo.WaitForExitAsync(timeout.Token);
        return (silo.ExitCode, silo.Output);
    }
}
