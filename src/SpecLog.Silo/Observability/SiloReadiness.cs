namespace SpecLog.Silo.Observability;

/// <summary>Whether this silo's part of the log came up after the start (its shards and ordering replicas recovered).</summary>
internal sealed class SiloReadiness
{
    private volatile bool _logUp;

    /// <summary>True once the silo activated and recovered its shards and ordering replicas.</summary>
    public bool LogUp => _logUp;

    public void MarkLogUp() => _logUp = true;
}
