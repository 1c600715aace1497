using System.Collections.Concurrent;
using System.Net;
using System.Text;
using k8s;
using k8s.Models;

namespace SpecLog.Silo.Tests;

/// <summary>
/// A stand-in for the Kubernetes API server, as much of it as Orleans' Kubernetes cluster agent uses: read a pod, patch
/// its labels (merge patch), list the namespace's pods by label selector, and watch them (the current pods as ADDED
/// events, then an open stream until disposed). Plain HTTP on a free loopback port; <see cref="WriteKubeConfig"/> writes
/// a kubeconfig that points at it. Every request is recorded.
/// </summary>
internal sealed class FakeKubernetesApi : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentDictionary<string, V1Pod> _pods = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly string _namespace;
    private readonly Task _serve;

    /// <param name="namespace">The only namespace it holds pods in.</param>
    /// <param name="pods">The pods that exist (as the StatefulSet controller would have created them).</param>
    public FakeKubernetesApi(string @namespace, IEnumerable<V1Pod> pods)
    {
        _namespace = @namespace;
        foreach (var pod in pods)
        {
            _pods[pod.Metadata.Name] = pod;
        }

        Port = SiloProcess.FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _serve = Task.Run(ServeAsync);
    }

    public int Port { get; }

    /// <summary>Every request so far, as <c>METHOD path?query</c>.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>A pod as it is now (with the labels patched in).</summary>
    public V1Pod Pod(string name) => _pods[name];

    /// <summary>Writes a kubeconfig for this server (namespace <c>namespace</c>, a token no one checks) to <paramref name="path"/>.</summary>
    public void WriteKubeConfig(string path) => File.WriteAllText(path, $"""
        apiVersion: v1
        kind: Config
        clusters:
          - name: fake
            cluster:
              server: http://127.0.0.1:{Port}
        users:
          - name: fake
            user:
              token: fake-token
        contexts:
          - name: fake
            context:
              cluster: fake
              user: fake
              namespace: {_namespace}
        current-context: fake
        """);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _serve;
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
        {
        }

        _listener.Close();
        _stop.Dispose();
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // stopped
            }

            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        Requests.Enqueue($"{request.HttpMethod} {request.Url?.PathAndQuery}");
        try
        {
            var path = request.Url!.AbsolutePath.TrimEnd('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
            var inNamespace = path is ["api", "v1", "namespaces", var ns, "pods", ..] && ns == _namespace;
            switch (request.HttpMethod, path.Length)
            {
                case ("GET", 5) when inNamespace && request.QueryString["watch"] is "true" or "1":
                    await WatchAsync(response, Select(request.QueryString["labelSelector"]));
                    return;
                case ("GET", 5) when inNamespace:
                    await WriteAsync(response, HttpStatusCode.OK, new V1PodList { ApiVersion = "v1", Kind = "PodList", Metadata = new V1ListMeta(), Items = Select(request.QueryString["labelSelector"]).ToList() });
                    return;
                case ("GET", 6) when inNamespace && _pods.TryGetValue(path[5], out var pod):
                    await WriteAsync(response, HttpStatusCode.OK, pod);
                    return;
                case ("PATCH", 6) when inNamespace && _pods.TryGetValue(path[5], out var pod):
                    using (var reader = new StreamReader(request.InputStream, Encoding.UTF8))
                    {
                        var patch = KubernetesJson.Deserialize<V1Pod>(await reader.ReadToEndAsync());
                        lock (pod)
                        {
                            foreach (var (key, value) in patch.Metadata?.Labels ?? new Dictionary<string, string>())
                            {
                                pod.Metadata.Labels[key] = value;
                            }
                        }
                    }

                    await WriteAsync(response, HttpStatusCode.OK, pod);
                    return;
                default:
                    await WriteAsync(response, HttpStatusCode.NotFound, new V1Status { ApiVersion = "v1", Kind = "Status", Status = "Failure", Reason = "NotFound", Code = 404, Message = $"{request.HttpMethod} {request.Url.AbsolutePath} not found" });
                    return;
            }
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException or OperationCanceledException)
        {
            // The client went away, or the server stops.
        }
        finally
        {
            try
            {
                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }
    }

    /// <summary>The pods whose labels match <paramref name="selector"/> (<c>key=value</c>, comma separated; empty: all).</summary>
    private IEnumerable<V1Pod> Select(string? selector)
    {
        var terms = (selector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(t => t.Split('=', 2)).ToList();
        return _pods.Values.Where(p => terms.All(t => p.Metadata.Labels.TryGetValue(t[0], out var v) && t.Length == 2 && v == t[1])).OrderBy(p => p.Metadata.Name, StringComparer.Ordinal).ToList();
    }

    private async Task WatchAsync(HttpListenerResponse response, IEnumerable<V1Pod> pods)
    {
        response.StatusCode = 200;
        response.ContentType = "application/json";
        response.SendChunked = true;
        foreach (var pod in pods)
        {
            var line = Encoding.UTF8.GetBytes(KubernetesJson.Serialize(new Watcher<V1Pod>.WatchEvent { Type = WatchEventType.Added, Object = pod }) + "\n");
            await response.OutputStream.WriteAsync(line, _stop.Token);
            await response.OutputStream.FlushAsync(_stop.Token);
        }

        await Task.Delay(Timeout.Infinite, _stop.Token); // nothing changes until the test ends
    }

    private static async Task WriteAsync(HttpListenerResponse response, HttpStatusCode code, object body)
    {
        var bytes = Encoding.UTF8.GetBytes(KubernetesJson.Serialize(body));
        response.StatusCode = (int)code;
        response.ContentType = "application/json";
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes);
    }
}
