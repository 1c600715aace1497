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
    public static string ResolveEnvironment(string[] args)
    {
        var bootstrap = new ConfigurationBuilder()
            .AddEnvironmentVariables("DOTNET_")
            .AddEnvironmentVariables("ASPNETCORE_")
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddCommandLine(args)
            .Build();
        var name = bootstrap["environment"];
        return string.IsNullOrWhiteSpace(name) ? DefaultEnvironment : name;
    }

    /// <summary>
    /// Replaces <paramref name="builder"/>'s sources with: <c>appsettings.json</c> and <c>appsettings.{environment}.json</c>
    /// next to the executable, <c>SPECLOG_</c>-prefixed environment variables, then the command line.
    /// </summary>
    public static IConfigurationBuilder UseSiloSources(this IConfigurationBuilder builder, string environment, string[] args)
    {
        builder.Sources.Clear();
        return builder
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: false, reloadOnChange: false)
            .AddJsonFile($"appsettings.{environment}.json", optional: true, reloadOnChange: false)
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddCommandLine(args);
    }

    /// <summary>Reads the configuration once, before the host exists (to choose the kind of host).</summary>
    public static IConfigurationRoot Load(string environment, string[] args) =>
        new ConfigurationBuilder().UseSiloSources(environment, args).Build();
}
