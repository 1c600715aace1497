using System.Globalization;

namespace SpecLog.Samples;

/// <summary>A sample's command line: <c>--name value</c> pairs and <c>--flag</c>s, each known name read once.</summary>
public sealed class SampleArgs
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = [];

    /// <summary>Parses <paramref name="args"/>; a name followed by another name (or nothing) is a flag.</summary>
    public SampleArgs(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) && args[i] is not "-h")
            {
                throw new ArgumentException($"Unexpected argument '{args[i]}'.");
            }

            var name = args[i] == "-h" ? "--help" : args[i];
            var value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null;
            _values[name] = value;
        }
    }

    /// <summary>Whether <paramref name="name"/> was given.</summary>
    public bool Flag(string name)
    {
        _read.Add(name);
        return _values.ContainsKey(name);
    }

    /// <summary>The value of <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public string? Text(string name, string? fallback = null)
    {
        _read.Add(name);
        return _values.TryGetValue(name, out var v) ? v ?? throw new ArgumentException($"{name} needs a value.") : fallback;
    }

    /// <summary>A number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public double Number(string name, double fallback, double min, double max)
    {
        var text = Text(name);
        if (text is null)
        {
            return fallback;
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
        {
            throw new ArgumentException($"{name} must be a number in [{min}, {max}], not '{text}'.");
        }

        return v;
    }

    /// <summary>Throws for any option the sample did not read (a typo must not be ignored).</summary>
    public void RejectUnknown()
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToArray();
        if (unknown.Length > 0)
        {
            throw new ArgumentException($"Unknown option{(unknown.Length > 1 ? "s" : "")}: {string.Join(", ", unknown)}.");
        }
    }
}
