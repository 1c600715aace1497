using System.Collections;
using System.Globalization;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Configuration;
using SpecLog.Server;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The Kubernetes deployment in <c>silo-config/kubernetes/</c>: every YAML document of every file there as a typed
/// object (unknown fields are errors), the silo container's environment as a given pod would get it, and the silo's
/// settings bound from that environment through the silo's own configuration code (<see cref="SiloConfiguration"/>).
/// </summary>
internal sealed class KubernetesManifest
{
    private KubernetesManifest(IReadOnlyList<(string File, IKubernetesObject Object)> objects) => Objects = objects;

    /// <summary>The folder of the manifests.</summary>
    public static string Folder => Path.Combine(AzuriteServer.RepositoryRoot(), "silo-config", "kubernetes");

    /// <summary>The folder of the silo's <c>appsettings*.json</c> (copied next to the silo's executable at build time).</summary>
    public static string SettingsFolder => Path.Combine(AzuriteServer.RepositoryRoot(), "silo-config");

    /// <summary>Every object, with the file it is in.</summary>
    public IReadOnlyList<(string File, IKubernetesObject Object)> Objects { get; }

    public V1StatefulSet StatefulSet => Single<V1StatefulSet>();

    /// <summary>The silo container of the StatefulSet's pods.</summary>
    public V1Container SiloContainer => StatefulSet.Spec.Template.Spec.Containers.Single(c => c.Name == "silo");

    /// <summary>Reads every <c>*.yaml</c> under <see cref="Folder"/>.</summary>
    public static KubernetesManifest Load()
    {
        var objects = new List<(string, IKubernetesObject)>();
        foreach (var file in Directory.GetFiles(Folder, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            List<object> documents;
            try
            {
                documents = KubernetesYaml.LoadAllFromString(File.ReadAllText(file), strict: true);
            }
            catch (Exception e)
            {
                throw new InvalidDataException($"{Path.GetFileName(file)} is not valid Kubernetes YAML: {e.Message}", e);
            }

            objects.AddRange(documents.Select(d => (Path.GetFileName(file), d as IKubernetesObject ?? throw new InvalidDataException($"{file}: {d.GetType()} is no Kubernetes object"))));
        }

        return new KubernetesManifest(objects);
    }

    public IEnumerable<T> All<T>() => Objects.Select(o => o.Object).OfType<T>();

    public T Single<T>()
    {
        var all = All<T>().ToList();
        Assert.True(all.Count == 1, $"expected one {typeof(T).Name} in {Folder}, found {all.Count}");
        return all[0];
    }

    /// <summary>The name of the StatefulSet's pod <paramref name="ordinal"/> (<c>speclog-silo-0</c>, …).</summary>
    public string PodName(int ordinal) => $"{StatefulSet.Metadata.Name}-{ordinal.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// The silo container's environment in pod <paramref name="ordinal"/> at <paramref name="podIp"/>: plain values as
    /// written, downward-API fields as Kubernetes fills them (<c>metadata.name</c>, <c>metadata.namespace</c>,
    /// <c>status.podIP</c>), Secret keys from <paramref name="secret"/> (the Secret template's values when null). Any
    /// other source fails, so a manifest change this test cannot follow is noticed.
    /// </summary>
    public Dictionary<string, string> PodEnvironment(int ordinal, string podIp, Func<string, string, string>? secret = null)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var variable in SiloContainer.Env ?? [])
        {
            environment.Add(variable.Name, variable switch
            {
                { ValueFrom: null } => variable.Value ?? "",
                { ValueFrom.FieldRef.FieldPath: "metadata.name" } => PodName(ordinal),
                { ValueFrom.FieldRef.FieldPath: "metadata.namespace" } => StatefulSet.Metadata.NamespaceProperty,
                { ValueFrom.FieldRef.FieldPath: "status.podIP" } => podIp,
                { ValueFrom.SecretKeyRef: { } key } => secret?.Invoke(key.Name, key.Key) ?? SecretTemplateValue(key.Name, key.Key),
                _ => throw new InvalidDataException($"{variable.Name}: the test does not know how Kubernetes fills {KubernetesJson.Serialize(variable.ValueFrom)}"),
            });
        }

        return environment;
    }

    /// <summary>A value of a Secret of the manifests (its template's placeholder).</summary>
    public string SecretTemplateValue(string name, string key)
    {
        var secret = All<V1Secret>().SingleOrDefault(s => s.Metadata.Name == name)
            ?? throw new InvalidDataException($"the manifests reference Secret '{name}', which none of them defines (not even as a template)");
        if (secret.StringData?.TryGetValue(key, out var text) == true)
        {
            return text;
        }

        return secret.Data?.TryGetValue(key, out var bytes) == true
            ? System.Text.Encoding.UTF8.GetString(bytes)
            : throw new InvalidDataException($"Secret '{name}' has no key '{key}'");
    }

    /// <summary>The silo's settings with <paramref name="environment"/> as its process environment and no command line, read as the silo reads them.</summary>
    public static BoundSettings Bind(IReadOnlyDictionary<string, string> environment)
    {
        var variables = ToDictionary(environment);
        var name = SiloConfiguration.ResolveEnvironment([], variables);
        var configuration = new ConfigurationBuilder().UseSiloSources(name, [], SettingsFolder, variables).Build();
        return new BoundSettings(
            name,
            configuration,
            configuration.GetSection(SiloSettings.SectionName).Get<SiloSettings>() ?? new SiloSettings(),
            configuration.GetSection("SpecLog").Get<SpecLogOptions>() ?? new SpecLogOptions());
    }

    /// <summary>
    /// Problems with the <c>SPECLOG_</c> variables of <paramref name="environment"/>: each must bind, on its own, to a
    /// property of <see cref="SiloSettings"/> (<c>Silo</c>) or <see cref="SpecLogOptions"/> (<c>SpecLog</c>) — the
    /// binder refuses keys no property takes — and, with the whole configuration bound, that property must hold the
    /// variable's value. A renamed or misspelt setting is reported with the variable's name.
    /// </summary>
    public static List<string> SettingProblems(IReadOnlyDictionary<string, string> environment)
    {
        var problems = new List<string>();
        var bound = Bind(environment);
        foreach (var (variable, value) in environment.Where(e => e.Key.StartsWith(SiloConfiguration.EnvironmentPrefix, StringComparison.OrdinalIgnoreCase)))
        {
            var key = SiloConfiguration.ConfigurationKeys(ToDictionary(new Dictionary<string, string> { [variable] = value }), SiloConfiguration.EnvironmentPrefix).Keys.Single();
            var section = key.Split(ConfigurationPath.KeyDelimiter)[0];
            var alone = new ConfigurationBuilder().AddInMemoryCollection([new(key, value)]).Build().GetSection(section);
            try
            {
                object? root = section switch
                {
                    SiloSettings.SectionName => alone.Get<SiloSettings>(o => o.ErrorOnUnknownConfiguration = true),
                    "SpecLog" => alone.Get<SpecLogOptions>(o => o.ErrorOnUnknownConfiguration = true),
                    _ => null,
                };
                if (root is null)
                {
                    problems.Add($"{variable}: '{key}' is in no section the silo binds (Silo or SpecLog)");
                    continue;
                }
            }
            catch (InvalidOperationException e)
            {
                problems.Add($"{variable}: '{key}' binds to no setting of the silo: {e.Message}");
                continue;
            }

            var path = key.Split(ConfigurationPath.KeyDelimiter)[1..];
            var actual = Read(section == "SpecLog" ? bound.Log : bound.Silo, path);
            if (!string.Equals(actual, value, StringComparison.OrdinalIgnoreCase))
            {
                problems.Add($"{variable}={value}: the silo's {key} reads '{actual}' with the whole configuration bound");
            }
        }

        return problems;
    }

    /// <summary>The value at <paramref name="path"/> (property names, list indexes) below <paramref name="root"/>, as invariant text.</summary>
    private static string? Read(object? root, IEnumerable<string> path)
    {
        var current = root;
        foreach (var segment in path)
        {
            current = current switch
            {
                null => null,
                IList list when int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index) => index < list.Count ? list[index] : null,
                _ => current.GetType().GetProperties().SingleOrDefault(p => string.Equals(p.Name, segment, StringComparison.OrdinalIgnoreCase))?.GetValue(current),
            };
        }

        return Convert.ToString(current, CultureInfo.InvariantCulture);
    }

    private static Hashtable ToDictionary(IReadOnlyDictionary<string, string> environment)
    {
        var table = new Hashtable();
        foreach (var (name, value) in environment)
        {
            table[name] = value;
        }

        return table;
    }
}

/// <summary>The silo's settings as bound from one environment.</summary>
internal sealed record BoundSettings(string Environment, IConfiguration Configuration, SiloSettings Silo, SpecLogOptions Log);
