using System.Text.Json.Nodes;
using ScottPlot;

namespace SpecLog.Bench.Reporting;

/// <summary>
/// A line chart inside a <see cref="ReportSection"/>: named series of (x, y) points. <see cref="BenchReport.WriteAsync"/>
/// renders it with ScottPlot as <c>&lt;report name&gt;-&lt;slug&gt;.png</c> next to the Markdown, which links it; the JSON
/// keeps the points so that runs can be compared or re-plotted by a script.
/// </summary>
public sealed class ReportChart
{
    private readonly List<(string Name, double[] Xs, double[] Ys)> _series = [];

    internal ReportChart(string slug, string title, string xLabel, string yLabel)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(slug);
        if (slug.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
        {
            throw new ArgumentException($"Chart slug '{slug}' must be ASCII letters, digits, '-' or '_' (it becomes a file name).", nameof(slug));
        }

        Slug = slug;
        Title = title;
        XLabel = xLabel;
        YLabel = yLabel;
    }

    /// <summary>Part of the PNG's file name, unique within its report.</summary>
    public string Slug { get; }

    /// <summary>The chart's title.</summary>
    public string Title { get; }

    /// <summary>The x axis label.</summary>
    public string XLabel { get; }

    /// <summary>The y axis label.</summary>
    public string YLabel { get; }

    /// <summary>Plot x on a log10 scale (for sweeps over orders of magnitude).</summary>
    public bool LogX { get; set; }

    /// <summary>Draw points only, no connecting lines (for scatter of many samples).</summary>
    public bool MarkersOnly { get; set; }

    /// <summary>
    /// Draw the series as stacked bars instead of lines: one bar per x value (labelled by <see cref="Categories"/>),
    /// each series a segment on top of the previous ones (for "where the time goes").
    /// </summary>
    public bool StackedBars { get; set; }

    /// <summary>Labels of the x positions 0, 1, 2, … when <see cref="StackedBars"/> is set.</summary>
    public IReadOnlyList<string> Categories { get; set; } = [];

    /// <summary>The PNG's file name once the report has been written (relative to the report's directory).</summary>
    public string? FileName { get; internal set; }

    /// <summary>The series, in the order added.</summary>
    public IReadOnlyList<(string Name, double[] Xs, double[] Ys)> Series => _series;

    /// <summary>Adds a series; points with a non-finite coordinate are left out.</summary>
    public ReportChart AddSeries(string name, IEnumerable<double> xs, IEnumerable<double> ys)
    {
        var points = xs.Zip(ys).Where(p => double.IsFinite(p.First) && double.IsFinite(p.Second) && (!LogX || p.First > 0)).ToArray();
        _series.Add((name, points.Select(p => p.First).ToArray(), points.Select(p => p.Second).ToArray()));
        return this;
    }

    /// <summary>Renders the chart as a PNG of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    public void Render(string path, int width = 800, int height = 450)
    {
        var plot = new Plot();
        plot.Title(Title);
        plot.XLabel(LogX ? XLabel + " (log scale)" : XLabel);
        plot.YLabel(YLabel);
        if (StackedBars)
        {
            RenderStacked(plot);
            plot.SavePng(path, width, height);
            return;
        }

        foreach (var (name, xs, ys) in _series)
        {
            if (xs.Length == 0)
            {
                continue;
            }

            var scatter = plot.Add.Scatter(LogX ? xs.Select(Math.Log10).ToArray() : xs, ys);
            scatter.LegendText = name;
            scatter.MarkerSize = MarkersOnly ? 3 : 6;
            scatter.LineWidth = MarkersOnly ? 0 : 2;
        }

        if (LogX)
        {
            var ticks = _series.SelectMany(s => s.Xs).Distinct().Order().ToArray();
            plot.Axes.Bottom.SetTicks(ticks.Select(Math.Log10).ToArray(), ticks.Select(BenchReport.FormatNumber).ToArray());
        }

        plot.Axes.Margins(0.05, 0.1);
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, width, height);
    }

    private void RenderStacked(Plot plot)
    {
        var palette = new ScottPlot.Palettes.Category10();
        var tops = new Dictionary<double, double>();
        for (var i = 0; i < _series.Count; i++)
        {
            var (name, xs, ys) = _series[i];
            var color = palette.GetColor(i);
            for (var k = 0; k < xs.Length; k++)
            {
                var bottom = tops.GetValueOrDefault(xs[k]);
                var bar = plot.Add.Bar(new Bar { Position = xs[k], ValueBase = bottom, Value = bottom + Math.Max(0, ys[k]), FillColor = color, Size = 0.6 });
                _ = bar;
                tops[xs[k]] = bottom + Math.Max(0, ys[k]);
            }

            plot.Legend.ManualItems.Add(new LegendItem { LabelText = name, FillColor = color });
        }

        if (Categories.Count > 0)
        {
            plot.Axes.Bottom.SetTicks(Enumerable.Range(0, Categories.Count).Select(i => (double)i).ToArray(), [.. Categories]);
        }

        plot.Axes.Margins(0.05, 0.1);
        plot.Axes.SetLimitsY(0, tops.Count == 0 ? 1 : tops.Values.Max() * 1.1);
        plot.ShowLegend(Alignment.UpperRight);
    }

    internal JsonObject ToJson() => new()
    {
        ["type"] = "chart",
        ["file"] = FileName,
        ["title"] = Title,
        ["x"] = XLabel,
        ["y"] = YLabel,
        ["series"] = new JsonArray(_series.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name,
            ["points"] = new JsonArray(s.Xs.Zip(s.Ys).Select(p => (JsonNode)new JsonArray(Math.Round(p.First, 4), Math.Round(p.Second, 4))).ToArray()),
        }).ToArray()),
    };
}
