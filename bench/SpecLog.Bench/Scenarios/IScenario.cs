using System.Globalization;

namespace SpecLog.Bench.Scenarios;

/// <summary>One measurement the bench tool can run.</summary>
public interface IScenario
{
    /// <summary>Name used on the command line.</summary>
    string Name { get; }

    /// <summary>One line for the usage text.</summary>
    string Description { get; }

    /// <summary>Whether the scenario runs the log (and so wants the JIT warm-up first); false for machine-only ones.</summary>
    bool UsesLog => true;

    /// <summary>Runs the scenario and returns the process exit code.</summary>
    Task<int> RunAsync(BenchArgs args);
}

/// <summary>Parsed <c>--name value</c> options (a bare <c>--flag</c> has the value "true").</summary>
public sealed class BenchArgs
{
    private readonly Dictionary<string, string> _values = new(StringComparer.OrdinalIgnoreCase);

    public static BenchArgs Parse(ReadOnlySpan<string> args)
    {
        var result = new BenchArgs();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unexpected argument '{args[i]}'.");
            }

            string name = args[i][2..];
            if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                result._values[name] = args[++i];
            }
            else
            {
                result._values[name] = "true";
            }
        }

        return result;
    }

    public string? Get(string name) => _values.TryGetValue(name, out string? value) ? value : null;

    public double GetDouble(string name, double fallback) =>
        Get(name) is { } text ? double.Parse(text, CultureInfo.InvariantCulture) : fallback;

    public int GetInt(string name, int fallback) =>
        Get(name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;
}
