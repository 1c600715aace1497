using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace SpecLog.Silo.Observability;

/// <summary>The silo's OpenTelemetry metrics: the log's meter and Orleans' meters, to Prometheus and, when configured, OTLP.</summary>
internal static class SiloTelemetry
{
    /// <summary>The meters exported: the log's own (append, delivery and stage latencies, records, no-op slots, reports, …) and Orleans'.</summary>
    public static readonly string[] Meters = [SpecLogMetrics.MeterName, "Microsoft.Orleans"];

    public static void AddSiloTelemetry(this IServiceCollection services, SiloSettings settings)
    {
        var telemetry = settings.Telemetry;
        var prometheus = telemetry.Prometheus && settings.Dashboard.Enabled;
        var otlp = !string.IsNullOrWhiteSpace(telemetry.OtlpEndpoint);
        if (!prometheus && !otlp)
        {
            return; // nothing listens to the meters, so the log does not time its stages
        }

        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(Meters);

            // The log's stages take from microseconds to seconds: buckets finer than the default's 0, 5, 10, 25 ms.
            metrics.AddView("speclog.stage.duration", new ExplicitBucketHistogramConfiguration
            {
                Boundaries = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000],
            });
            if (prometheus)
            {
                metrics.AddPrometheusExporter();
            }

            if (otlp)
            {
                metrics.AddOtlpExporter(o => o.Endpoint = new Uri(telemetry.OtlpEndpoint!));
            }
        });
    }
}
