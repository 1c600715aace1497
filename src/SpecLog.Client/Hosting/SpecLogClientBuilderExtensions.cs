using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using SpecLog.Client;

namespace Orleans.Hosting;

/// <summary>Registers <see cref="SpecLogClient"/> with an Orleans client or any service collection.</summary>
public static class SpecLogClientBuilderExtensions
{
    /// <summary>Makes <see cref="SpecLogClient"/> available from the client's services.</summary>
    public static IClientBuilder AddSpecLogClient(this IClientBuilder builder, Action<SpecLogClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSpecLogClient(configure);
        return builder;
    }

    /// <summary>Makes <see cref="SpecLogClient"/> available from <paramref name="services"/> (a silo's or a client's).</summary>
    public static IServiceCollection AddSpecLogClient(this IServiceCollection services, Action<SpecLogClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<SpecLogClientOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton<SpecLogClient>();
        return services;
    }
}
