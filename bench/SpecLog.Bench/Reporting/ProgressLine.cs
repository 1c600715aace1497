using System.Diagnostics;
using System.Globalization;

namespace SpecLog.Bench.Reporting;

/// <summary>
/// A one-line progress display for long runs, on standard output. When the output is a terminal the line is redrawn
/// in place with a carriage return (at most ten times a second) and shows the count, percentage, elapsed time and,
/// after the first second, an estimate of the time left. When the output is redirected (a file, a pipe, CI) it writes one plain line per step:
/// each <see cref="Step"/> call, each tenth of <c>total</c> passed by <see cref="Report"/>, and <see cref="Done"/>.
/// </summary>
/// <example>
/// <code>
/// var progress = new ProgressLine("fdatasync", samples);
/// for (int i = 0; i &lt; samples; i++) { ...; progress.Report(i + 1); }
/// progress.Done("p50 0.81 ms");
/// </code>
/// </example>
public sealed class ProgressLine
{
    private static readonly long s_redrawInterval = Stopwatch.Frequency / 10;
    private readonly string _label;
    private readonly long _total;
    private readonly bool _interactive;
    private readonly long _start = Stopwatch.GetTimestamp();
    private long _lastDraw;
    private int _lastDecile;
    private int _drawnWidth;
    private bool _done;

    /// <summary>Starts a progress line for <paramref name="total"/> units of work (0 when the total is unknown).</summary>
    public ProgressLine(string label, long total = 0)
        : this(label, total, interactive: !Console.IsOutputRedirected)
    {
    }

    /// <summary>As above, choosing the terminal (redraw) or redirected (line per step) behaviour explicitly.</summary>
    public ProgressLine(string label, long total, bool interactive)
    {
        _label = label;
        _total = Math.Max(0, total);
        _interactive = interactive;
        if (_interactive)
        {
            Draw($"{_label} ...");
        }
        else
        {
            Console.WriteLine(_total > 0 ? $"{_label}: starting, {_total.ToString(CultureInfo.InvariantCulture)} to do" : $"{_label}: starting");
        }
    }

    /// <summary>Time since the line was created.</summary>
    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_start);

    /// <summary>Reports that <paramref name="done"/> units are complete, with optional detail text.</summary>
    public void Report(long done, string? detail = null)
    {
        if (_done)
        {
            return;
        }

        if (_interactive)
        {
            long now = Stopwatch.GetTimestamp();
            if (now - _lastDraw < s_redrawInterval && done < _total)
            {
                return;
            }

            _lastDraw = now;
            Draw(Text(done, detail, withEstimate: true));
        }
        else if (_total > 0)
        {
            int decile = (int)Math.Min(10, done * 10 / _total);
            if (decile > _lastDecile && decile < 10)
            {
                _lastDecile = decile;
                Console.WriteLine(Text(done, detail, withEstimate: false));
            }
        }
    }

    /// <summary>Reports a named step (e.g. "starting silo 2"); always shown, as its own line when redirected.</summary>
    public void Step(string detail)
    {
        if (_done)
        {
            return;
        }

        string text = $"{_label}: {detail} [{FormatTime(Elapsed)}]";
        if (_interactive)
        {
            _lastDraw = Stopwatch.GetTimestamp();
            Draw(text);
        }
        else
        {
            Console.WriteLine(text);
        }
    }

    /// <summary>Ends the line: prints the label, the elapsed time and an optional summary, then a newline.</summary>
    public void Done(string? summary = null)
    {
        if (_done)
        {
            return;
        }

        _done = true;
        string text = $"{_label}: done in {FormatTime(Elapsed)}{(summary is null ? string.Empty : " — " + summary)}";
        if (_interactive)
        {
            Draw(text);
            Console.WriteLine();
        }
        else
        {
            Console.WriteLine(text);
        }
    }

    private string Text(long done, string? detail, bool withEstimate)
    {
        TimeSpan elapsed = Elapsed;
        string text = _total > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{_label}: {done}/{_total} ({100.0 * done / _total:F0} %) {FormatTime(elapsed)}")
            : string.Create(CultureInfo.InvariantCulture, $"{_label}: {done} {FormatTime(elapsed)}");
        if (withEstimate && _total > 0 && done > 0 && done < _total && elapsed >= TimeSpan.FromSeconds(1))
        {
            text += $", ~{FormatTime(elapsed * ((_total - done) / (double)done))} left";
        }

        return detail is null ? text : $"{text} — {detail}";
    }

    private void Draw(string text)
    {
        int width = Math.Max(20, SafeWindowWidth() - 1);
        if (text.Length > width)
        {
            text = text[..width];
        }

        // Pad over whatever the previous, longer draw left behind.
        Console.Write("\r" + text.PadRight(Math.Max(text.Length, _drawnWidth)));
        _drawnWidth = text.Length;
    }

    private static int SafeWindowWidth()
    {
        try
        {
            return Console.WindowWidth > 0 ? Console.WindowWidth : 120;
        }
        catch (IOException)
        {
            return 120;
        }
        catch (PlatformNotSupportedException)
        {
            return 120;
        }
    }

    private static string FormatTime(TimeSpan t) =>
        t.TotalSeconds < 60
            ? t.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) + " s"
            : $"{(int)t.TotalMinutes}:{t.Seconds:D2} min";
}
