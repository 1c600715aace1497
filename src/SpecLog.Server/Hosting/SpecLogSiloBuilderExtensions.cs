using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Storage;
using SpecLog;
using SpecLog.Server;
using SpecLog.Server.Consumers;
using SpecLog.Server.Hosting;
using SpecLog.Server.Ordering;
using SpecLog.Server.Ordering.Copilot;
using SpecLog.Server.Placement;
using SpecLog.Server.Scheduling;

namespace Orleans.Hosting;

/// <summary>Registers SpecLogOrleans on a silo.</summary>
public static class SpecLogSiloBuilderExtensions
{
    /// <summary>Adds the log's shard and sequencer grains, their options and a <c>SpecLogClient</c> usable inside the silo.</summary>
    public static ISiloBuilder AddSpecLog(this ISiloBuilder builder, Action<SpecLogOptions>? configure = null) =>
        builder.AddSpecLog(ob =>
        {
            if (configure is not null)
            {
                ob.Configure(configure);
            }
        });

    /// <summary>Adds the log, configuring its options through an <see cref="OptionsBuilder{TOptions}"/> (for binding configuration).</summary>
    public static ISiloBuilder AddSpecLog(this ISiloBuilder builder, Action<OptionsBuilder<SpecLogOptions>> configureOptions)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configureOptions);
        var services = builder.Services;
        configureOptions(services.AddOptions<SpecLogOptions>());
        services.AddSingleton<IValidateOptions<SpecLogOptions>, SpecLogOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<DeadlineTicker>();
        services.TryAddSingleton<SiloLogs>();
        services.TryAddSingleton<NodeLiveness>();
        if (!services.Any(d => d.ServiceType == typeof(SiloStopping)))
        {
            services.AddSingleton<SiloStopping>();
            services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<SiloStopping>());
        }
        if (!services.Any(d => d.ServiceType == typeof(DataHomePlacementDirector)))
        {
            services.AddSingleton<DataHomePlacementDirector>();
            services.AddPlacementDirector<ShardHomePlacement>(sp => sp.GetRequiredService<DataHomePlacementDirector>());
            services.AddPlacementDirector<SequencerHomePlacement>(sp => sp.GetRequiredService<DataHomePlacementDirector>());
            services.AddPlacementDirector<ReplicaHomePlacement>(sp => sp.GetRequiredService<DataHomePlacementDirector>());
        }
        services.TryAddSingleton<IOrderingLayer>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<SpecLogOptions>>().Value;
            var grains = sp.GetRequiredService<IGrainFactory>();
            return options.Replication.IsReplicated
                ? new CopilotOrderingLayer(grains, options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<CopilotOrderingLayer>>())
                : new SingleSequencerOrderingLayer(grains);
        });
        services.AddSpecLogClient();
        if (!services.Any(d => d.IsKeyedService && d.ServiceType == typeof(IGrainStorage) && Equals(d.ServiceKey, ConsumerCheckpoints.StorageName)))
        {
            // Consumer checkpoints in the data directory unless the host chose a provider (Azure Blob storage in a cluster,
            // where a checkpoint grain may activate on any silo). A provider registered later replaces this one.
            services.AddKeyedSingleton<IGrainStorage>(ConsumerCheckpoints.StorageName, (sp, _) => new FileGrainStorage(
                Path.Combine(sp.GetRequiredService<IOptions<SpecLogOptions>>().Value.DataDirectory, "consumers"),
                sp.GetRequiredService<Orleans.Serialization.Serializer>()));
        }

        return builder;
    }
}
