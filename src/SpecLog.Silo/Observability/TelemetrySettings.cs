namespace SpecLog.Silo.Observability;

/// <summary>
/// <c>Silo:Telemetry</c>: the silo exports the log's meter (<c>SpecLog</c>) and Orleans' own meters through OpenTelemetry:
/// a Prometheus scrape endpoint on the dashboard's port, and OTLP when an endpoint is given; with OTLP also the log's
/// traces (ActivitySource <c>SpecLog</c>), sampled by <see cref="TraceSampleRatio"/>.
/// </summary>
internal sealed class TelemetrySettings
{
    /// <summary>Default path of the Prometheus scrape endpoint.</summary>
    public const string DEFAULT_PROMETHEUS_PATH = "/metrics";

    /// <summary>Whether <see cref="PrometheusPath"/> serves the metrics in Prometheus' text format (with the dashboard).</summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>Whether Orleans' own meter (<c>Microsoft.Orleans</c>: messaging, grain calls, activations, membership) is exported beside the log's.</summary>
    public bool OrleansMeters { get; set; } = true;

    /// <summary>
    /// Whether the log times every stage of every append and delivery (<c>speclog.stage.duration</c>, and the log page's
    /// per-shard latencies); off, the log's counters are still exported.
    /// </summary>
    public bool StageHistograms { get; set; } = true;

    /// <summary>Path of the Prometheus scrape endpoint.</summary>
    public string PrometheusPath { get; set; } = DEFAULT_PROMETHEUS_PATH;

    /// <summary>An OTLP collector to push metrics and traces to (for example <c>http://otel-collector:4317</c>); none when empty.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>Default <see cref="TraceSampleRatio"/>.</summary>
    public const double DEFAULT_TRACE_SAMPLE_RATIO = 0.01;

    /// <summary>
    /// The share of traces the silo records when it starts them (appends from clients that do not trace; reports no
    /// traced append asked for never start one). A trace begun by a traced client keeps that client's decision (parent
    /// based), so an application that samples its own traces decides for its appends. 0 records only those; 1 records
    /// every append.
    /// </summary>
    /// <remarks>
    /// The default, 1 %, because a traced append costs the log: six to eight spans (client, call, shard, ordering wait,
    /// report, one per ordering replica) and their events, allocated on the append path and exported, where an append
    /// takes a few hundred microseconds and a silo serves tens of thousands a second. One in a hundred still gives
    /// hundreds of complete traces a second under load, and every append while the log is nearly idle is not needed to
    /// see where its time goes. Raise it to 1 to trace every append while investigating one.
    /// </remarks>
    public double TraceSampleRatio { get; set; } = DEFAULT_TRACE_SAMPLE_RATIO;

    /// <summary>
    /// Whether Orleans propagates activities through every grain call (<c>AddActivityPropagation</c>) and its own spans
    /// (sources <c>Microsoft.Orleans.*</c>) are exported beside the log's: an RPC span for every grain call, the log's
    /// internal traffic (reports, commit notices, pushes, Copilot's messages) included. For debugging; the log's own
    /// traces join up without it.
    /// </summary>
    public bool TraceOrleansCalls { get; set; }

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

        if (TraceOrleansCalls && string.IsNullOrWhiteSpace(OtlpEndpoint))
        {
            yield return "Silo:Telemetry:TraceOrleansCalls needs Silo:Telemetry:OtlpEndpoint: traces are exported only over OTLP.";
        }

        if (double.IsNaN(TraceSampleRatio) || TraceSampleRatio is < 0 or > 1)
        {
            yield return $"Silo:Telemetry:TraceSampleRatio must be in [0, 1] (got {TraceSampleRatio.ToString(System.Globalization.CultureInfo.InvariantCulture)}).";
        }
    }
}
