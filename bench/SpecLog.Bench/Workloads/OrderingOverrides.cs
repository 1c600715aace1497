using Microsoft.Extensions.Configuration;
using SpecLog.FixAnte;

namespace SpecLog.Bench.Workloads;

/// <summary>
/// <c>--ordering Name=Value,...</c>: sets <see cref="FixAnteOptions"/> properties by name, as the silo's
/// <c>SpecLog:Ordering</c> configuration section would (e.g. <c>LagFixSlack=false,CutsPerWindow=50</c>), so that a
/// scenario can be run with one setting changed and compared side by side with the default.
/// </summary>
internal static class OrderingOverrides
{
    public static Action<FixAnteOptions> Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return _ => { };
        }

        var pairs = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"--ordering expects Name=Value pairs separated by commas (got '{part}').");
            }

            var name = part[..eq].Trim();
            if (typeof(FixAnteOptions).GetProperty(name) is not { CanWrite: true })
            {
                throw new ArgumentException($"--ordering: FixAnteOptions has no settable property '{name}'.");
            }

            pairs[name] = part[(eq + 1)..].Trim();
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(pairs).Build();
        var probe = new FixAnteOptions();
        configuration.Bind(probe, o => o.ErrorOnUnknownConfiguration = true);
        probe.Validate(); // fail before any cluster starts
        return options => configuration.Bind(options);
    }

    /// <summary>Text for reports: the overrides, or "defaults".</summary>
    public static string Describe(string? text) => string.IsNullOrWhiteSpace(text) ? "default Fix-Ante settings" : $"Fix-Ante settings changed: `{text}`";
}
