using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace SpecLog.Silo.Observability;

/// <summary>
/// The silo's OpenTelemetry: metrics (the log's meter and Orleans') to Prometheus and, when configured, OTLP; traces (the
/// log's activity source, and Orleans' when its call tracing is on) only to OTLP, Prometheus having no traces.
/// </summary>
internal static class SiloTelemetry
{
    /// <summary>The meters exported: the log's own (append, delivery and stage latencies, records, no-op slots, reports, …) and Orleans'.</summary>
    public static readonly string[] Meters = [SpecLogMetrics.MeterName, "Microsoft.Orleans"];

    /// <summary>Orleans' activity sources always traced: grain lifecycle (activation, deactivation, directory registration) and storage; few spans.</summary>
    public static readonly string[] OrleansActivitySources =
    [
        Orleans.Diagnostics.ActivitySources.LifecycleActivitySourceName,
        Orleans.Diagnostics.ActivitySources.StorageActivitySourceName,
    ];

    /// <summary>
    /// Orleans' grain-call sources (application grains', its runtime's): spans made only by its activity propagation,
    /// on with <see cref="TelemetrySettings.TraceOrleansCalls"/>.
    /// </summary>
    public static readonly string[] OrleansCallActivitySources =
    [
        Orleans.Diagnostics.ActivitySources.ApplicationGrainActivitySourceName,
        Orleans.Diagnostics.ActivitySources.RuntimeActivitySourceName,
    ];

    public static void AddSiloTelemetry(this IServiceCollection services, SiloSettings settings)
    {
        var telemetry = settings.Telemetry;
        var prometheus = telemetry.Prometheus && settings.Dashboard.Enabled;
        var otlp = !string.IsNullOrWhiteSpace(telemetry.OtlpEndpoint);
        if (!prometheus && !otlp)
        {
            return; // nothing listens to the meters or the activity source, so the log neither times its stages nor traces
        }

        var openTelemetry = services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(telemetry.OrleansMeters ? Meters : [SpecLogMetrics.MeterName]);

            // The log's stages take from microseconds to seconds: buckets finer than the default's 0, 5, 10, 25 ms. A
            // dropped instrument has no listener, so the log does not time its stages at all.
            metrics.AddView(SpecLogMetrics.StageInstrument, telemetry.StageHistograms
                ? new ExplicitBucketHistogramConfiguration { Boundaries = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000] }
                : MetricStreamConfiguration.Drop);
            if (prometheus)
            {
                metrics.AddPrometheusExporter();
            }

            if (otlp)
            {
                metrics.AddOtlpExporter(o => o.Endpoint = new Uri(telemetry.OtlpEndpoint!));
            }
        });

        if (otlp)
        {
            // Export failures (no collector, a collector gone) are the exporter's to log and retry; they never reach
            // the log's code: spans are handed to a bounded batch queue and dropped when it is full.
            openTelemetry.WithTracing(tracing =>
            {
                tracing.AddSource(SpecLogTracing.SourceName);
                tracing.AddSource(OrleansActivitySources);
                if (telemetry.TraceOrleansCalls)
                {
                    tracing.AddSource(OrleansCallActivitySources);
                }

                tracing.SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(telemetry.TraceSampleRatio)));
                tracing.AddOtlpExporter(o => o.Endpoint = new Uri(telemetry.OtlpEndpoint!));
            });
        }
    }
}
