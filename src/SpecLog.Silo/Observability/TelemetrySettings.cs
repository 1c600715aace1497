namespace SpecLog.Silo.Observability;

/// <summary>
/// <c>Silo:Telemetry</c>: the silo exports the log's meter (<c>SpecLog</c>) and Orleans' own meters through OpenTelemetry:
/// a Prometheus scrape endpoint on the dashboard's port, and OTLP when an endpoint is given.
/// </summary>
internal sealed class TelemetrySettings
{
    /// <summary>Default path of the Prometheus scrape endpoint.</summary>
    public const string DEFAULT_PROMETHEUS_PATH = "/metrics";

    /// <summary>Whether <see cref="PrometheusPath"/> serves the metrics in Prometheus' text format (with the dashboard).</summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>Path of the Prometheus scrape endpoint.</summary>
    public string PrometheusPath { get; set; } = DEFAULT_PROMETHEUS_PATH;

    /// <summary>An OTLP collector to push metrics to (for example <c>http://otel-collector:4317</c>); none when empty.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>Every problem with these settings, each naming the setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (!PrometheusPath.StartsWith('/'))
        {
            yield return $"Silo:Telemetry:PrometheusPath must start with '/' (got '{PrometheusPath}').";
        }

        if (!string.IsNullOrWhiteSpace(OtlpEndpoint) && !Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out _))
        {
            yield return $"Silo:Telemetry:OtlpEndpoint must be an absolute URI (got '{OtlpEndpoint}').";
        }
    }
}
