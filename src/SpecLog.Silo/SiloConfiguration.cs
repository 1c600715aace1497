using System.Collections;
using Microsoft.Extensions.Configuration;

namespace SpecLog.Silo;

/// <summary>Where the silo's configuration comes from, in increasing precedence.</summary>
internal static class SiloConfiguration
{
    /// <summary>Prefix of environment variables read as configuration (<c>SPECLOG_SpecLog__ShardCount=8</c>).</summary>
    public const string EnvironmentPrefix = "SPECLOG_";

    /// <summary>The environment used when none is given.</summary>
    public const string DefaultEnvironment = "Production";

    /// <summary>
    /// The environment name: <c>--environment</c> on the command line, else <c>SPECLOG_ENVIRONMENT</c>, else
    /// <c>ASPNETCORE_ENVIRONMENT</c>, else <c>DOTNET_ENVIRONMENT</c>, else <see cref="DefaultEnvironment"/>.
    /// </summary>
    /// <param name="args">The command line.</param>
    /// <param name="environmentVariables">The process's environment variables when null; a test passes a manifest's.</param>
    public static string ResolveEnvironment(string[] args, IDictionary? environmentVariables = null)
    {
        var variables = environmentVariables ?? Environment.GetEnvironmentVariables();
        var bootstrap = new ConfigurationBuilder()
            .AddEnvironment(variables, "DOTNET_")
            .AddEnvironment(variables, "ASPNETCORE_")
            .AddEnvironment(variables, EnvironmentPrefix)
            .AddCommandLine(args)
            .Build();
        var name = bootstrap["environment"];
        return string.IsNullOrWhiteSpace(name) ? DefaultEnvironment : name;
    }

    /// <summary>
    /// Replaces <paramref name="builder"/>'s sources with: <c>appsettings.json</c> and <c>appsettings.{environment}.json</c>
    /// next to the executable, <c>SPECLOG_</c>-prefixed environment variables, then the command line.
    /// </summary>
    /// <param name="builder">The builder whose sources are replaced.</param>
    /// <param name="environment">The environment name (<see cref="ResolveEnvironment"/>).</param>
    /// <param name="args">The command line.</param>
    /// <param name="settingsDirectory">Where the <c>appsettings*.json</c> files are; null: next to the executable.</param>
    /// <param name="environmentVariables">The process's environment variables when null; a test passes a manifest's.</param>
    public static IConfigurationBuilder UseSiloSources(this IConfigurationBuilder builder, string environment, string[] args, string? settingsDirectory = null, IDictionary? environmentVariables = null)
    {
        builder.Sources.Clear();
        return builder
            .SetBasePath(settingsDirectory ?? AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: false, reloadOnChange: false)
            .AddJsonFile($"appsettings.{environment}.json", optional: true, reloadOnChange: false)
            .AddEnvironment(environmentVariables ?? Environment.GetEnvironmentVariables(), EnvironmentPrefix)
            .AddCommandLine(args);
    }

    /// <summary>Reads the configuration once, before the host exists (to choose the kind of host).</summary>
    public static IConfigurationRoot Load(string environment, string[] args) =>
        new ConfigurationBuilder().UseSiloSources(environment, args).Build();

    /// <summary>
    /// The configuration keys of the environment variables starting with <paramref name="prefix"/> (ignoring case), as
    /// .NET's environment-variable provider reads them: the prefix removed and <c>__</c> standing for <c>:</c>, so
    /// <c>SPECLOG_Silo__NodeName</c> is <c>Silo:NodeName</c>. Other variables are not configuration.
    /// </summary>
    public static Dictionary<string, string?> ConfigurationKeys(IDictionary environmentVariables, string prefix)
    {
        var keys = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry variable in environmentVariables)
        {
            if (variable.Key is string name && name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                keys[name[prefix.Length..].Replace("__", ConfigurationPath.KeyDelimiter, StringComparison.Ordinal)] = variable.Value as string;
            }
        }

        return keys;
    }

    private static IConfigurationBuilder AddEnvironment(this IConfigurationBuilder builder, IDictionary variables, string prefix) =>
        builder.AddInMemoryCollection(ConfigurationKeys(variables, prefix));
}
