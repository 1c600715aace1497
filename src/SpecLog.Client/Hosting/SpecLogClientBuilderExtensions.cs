using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using SpecLog.Client;

namespace Orleans.Hosting;

/// <summary>Registers <see cref="SpecLogClient"/> with an Orleans client or any service collection.</summary>
public static class SpecLogClientBuilderExtensions
{
    /// <summary>
    /// Makes <see cref="SpecLogClient"/> available from the client's services, and makes the client's start fail with a
    /// <see cref="SpecLogUnavailableException"/> when no silo answers within <see cref="SpecLogClientOptions.ConnectTimeout"/>.
    /// </summary>
    public static IClientBuilder AddSpecLogClient(this IClientBuilder builder, Action<SpecLogClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSpecLogClient(configure);

        // Orleans' default (registered when the client builder is made) retries a failed start for about three minutes
        // without a word: replace it. An application's own filter, registered before or after this call, wins.
        var services = builder.Services;
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (services[i].ServiceType == typeof(IClientConnectionRetryFilter)
                && services[i].ImplementationType?.Name == "LinearBackoffClientConnectionRetryFilter")
            {
                services.RemoveAt(i);
            }
        }

        services.TryAddSingleton<IClientConnectionRetryFilter, ConnectDeadlineFilter>();
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
