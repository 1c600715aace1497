using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SpecLog.Bench.Reporting;

/// <summary>
/// The results of one bench run: a title, the machine it ran on, sections of free text and Markdown tables, and a flat
/// dictionary of key figures (name → number or string; numbers are microseconds unless the name says otherwise).
/// <see cref="WriteAsync"/> writes <c>&lt;name&gt;.md</c> and <c>&lt;name&gt;.json</c>; <see cref="MergeFiguresAsync"/>
/// adds the figures to a shared JSON file such as <c>bench/results/latest.json</c> that several scenarios fill.
/// </summary>
/// <remarks>
/// JSON layout (indented, numbers in invariant form, NaN/infinity as null):
/// <c>{"title", "started_utc", "finished_utc", "duration_s", "machine": {...}, "figures": {...}, "sections": [{"heading", "content": [{"type": "text", "text"} | {"type": "table", "columns": [...], "rows": [[...]]}]}]}</c>.
/// </remarks>
public sealed class BenchReport
{
    // Relaxed escaping keeps apostrophes, µ and × readable; the files are data, never embedded in HTML.
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly List<ReportSection> _sections = [];
    private readonly OrderedDictionary<string, object> _figures = new(StringComparer.Ordinal);

    /// <summary>Starts a report now: captures the machine description and the load average at start.</summary>
    public BenchReport(string title)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(title);
        Title = title;
        Machine = MachineInfo.Capture();
        StartedUtc = DateTimeOffset.UtcNow;
    }

    /// <summary>Heading of the Markdown file and "title" in the JSON.</summary>
    public string Title { get; }

    /// <summary>The machine, with the load average at start (and at end once <see cref="Finish"/> ran).</summary>
    public MachineInfo Machine { get; }

    /// <summary>When the report was created.</summary>
    public DateTimeOffset StartedUtc { get; }

    /// <summary>When <see cref="Finish"/> first ran (null before).</summary>
    public DateTimeOffset? FinishedUtc { get; private set; }

    /// <summary>Sections in the order they were added.</summary>
    public IReadOnlyList<ReportSection> Sections => _sections;

    /// <summary>Key figures in the order they were first set; values are <see cref="double"/> or <see cref="string"/>.</summary>
    public IReadOnlyDictionary<string, object> Figures => _figures;

    /// <summary>Appends a section and returns it for adding text and tables.</summary>
    public ReportSection AddSection(string heading)
    {
        var section = new ReportSection(heading);
        _sections.Add(section);
        return section;
    }

    /// <summary>Sets (or replaces) a numeric key figure.</summary>
    public void SetFigure(string key, double value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        _figures[key] = value;
    }

    /// <summary>Sets (or replaces) a text key figure.</summary>
    public void SetFigure(string key, string value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentNullException.ThrowIfNull(value);
        _figures[key] = value;
    }

    /// <summary>Marks the end of the run: records the finish time and the load average at end. Later calls do nothing.</summary>
    public void Finish()
    {
        if (FinishedUtc is null)
        {
            FinishedUtc = DateTimeOffset.UtcNow;
            Machine.MarkEnd();
        }
    }

    /// <summary>
    /// Writes <c>&lt;directory&gt;/&lt;name&gt;.md</c> and <c>&lt;directory&gt;/&lt;name&gt;.json</c> (creating the
    /// directory; calls <see cref="Finish"/> first). Returns the two full paths.
    /// </summary>
    public async Task<(string MarkdownPath, string JsonPath)> WriteAsync(string directory, string name, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Finish();
        string dir = Path.GetFullPath(directory);
        Directory.CreateDirectory(dir);
        string markdownPath = Path.Combine(dir, name + ".md");
        string jsonPath = Path.Combine(dir, name + ".json");
        foreach (ReportChart chart in _sections.SelectMany(section => section.Content.OfType<ReportChart>()))
        {
            chart.FileName = $"{name}-{chart.Slug}.png";
            chart.Render(Path.Combine(dir, chart.FileName));
        }

        await WriteAtomicAsync(markdownPath, ToMarkdown(), cancellationToken);
        await WriteAtomicAsync(jsonPath, ToJson().ToJsonString(s_json) + "\n", cancellationToken);
        return (markdownPath, jsonPath);
    }

    /// <summary>
    /// Merges figures into the JSON file at <paramref name="jsonPath"/>, creating it when missing: the figures named in
    /// <paramref name="keys"/> (all when null) replace those under "figures", "machine" becomes this report's machine,
    /// "figure_sources" records which report set each figure and when, and everything else in the file is kept.
    /// Throws <see cref="InvalidDataException"/> rather than overwrite a file that is not a JSON object.
    /// </summary>
    public async Task MergeFiguresAsync(string jsonPath, IEnumerable<string>? keys = null, CancellationToken cancellationToken = default)
    {
        Finish();
        string path = Path.GetFullPath(jsonPath);
        JsonObject root = [];
        if (File.Exists(path))
        {
            string existing = await File.ReadAllTextAsync(path, cancellationToken);
            try
            {
                root = JsonNode.Parse(existing) as JsonObject ?? throw new InvalidDataException($"{path} does not hold a JSON object.");
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"{path} is not valid JSON: {ex.Message}", ex);
            }
        }

        JsonObject figures = root["figures"] as JsonObject ?? [];
        JsonObject sources = root["figure_sources"] as JsonObject ?? [];
        root.Remove("figures");
        root.Remove("figure_sources");
        string source = $"{Title} ({StartedUtc.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)})";
        foreach (string key in keys ?? _figures.Keys)
        {
            if (!_figures.TryGetValue(key, out object? value))
            {
                throw new ArgumentException($"The report has no figure '{key}'.", nameof(keys));
            }

            figures[key] = FigureNode(value);
            sources[key] = source;
        }

        root["machine"] = Machine.ToJson();
        root["updated_utc"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        root["figures"] = figures;
        root["figure_sources"] = sources;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await WriteAtomicAsync(path, root.ToJsonString(s_json) + "\n", cancellationToken);
    }

    /// <summary>The Markdown text <see cref="WriteAsync"/> writes.</summary>
    public string ToMarkdown()
    {
        var md = new StringBuilder();
        md.Append("# ").Append(Title).Append("\n\n");
        string when = StartedUtc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";
        if (FinishedUtc is { } finished)
        {
            when += string.Create(CultureInfo.InvariantCulture, $", {(finished - StartedUtc).TotalSeconds:F0} s");
        }

        md.Append("Run ").Append(when).Append(".  \nMachine: ").Append(Machine.Describe()).Append(".\n\n");
        foreach (ReportSection section in _sections)
        {
            section.AppendMarkdown(md);
        }

        if (_figures.Count > 0)
        {
            md.Append("## Key figures\n\n");
            var table = new ReportTable(["figure", "value"]);
            foreach ((string key, object value) in _figures)
            {
                table.AddRow($"`{key}`", value is double d ? FormatNumber(d) : (string)value);
            }

            table.AppendMarkdown(md);
        }

        return md.ToString();
    }

    /// <summary>The JSON document <see cref="WriteAsync"/> writes.</summary>
    public JsonObject ToJson()
    {
        var figures = new JsonObject();
        foreach ((string key, object value) in _figures)
        {
            figures[key] = FigureNode(value);
        }

        var sections = new JsonArray();
        foreach (ReportSection section in _sections)
        {
            sections.Add(section.ToJson());
        }

        return new JsonObject
        {
            ["title"] = Title,
            ["started_utc"] = StartedUtc.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            ["finished_utc"] = FinishedUtc?.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            ["duration_s"] = FinishedUtc is { } f ? Math.Round((f - StartedUtc).TotalSeconds, 1) : null,
            ["machine"] = Machine.ToJson(),
            ["figures"] = figures,
            ["sections"] = sections,
        };
    }

    /// <summary>Invariant-culture text of a number: integers without decimals, others with up to 3 decimals ("n/a" for NaN).</summary>
    public static string FormatNumber(double value) =>
        !double.IsFinite(value) ? "n/a"
        : value == Math.Floor(value) && Math.Abs(value) < 1e15 ? value.ToString("F0", CultureInfo.InvariantCulture)
        : value.ToString("0.###", CultureInfo.InvariantCulture);

    private static JsonNode? FigureNode(object value) => value switch
    {
        double d when double.IsFinite(d) => JsonValue.Create(d),
        double => null,
        string s => JsonValue.Create(s),
        _ => throw new InvalidOperationException($"Unexpected figure type {value.GetType()}."),
    };

    private static async Task WriteAtomicAsync(string path, string text, CancellationToken cancellationToken)
    {
        string temp = $"{path}.{Environment.ProcessId}.tmp";
        await File.WriteAllTextAsync(temp, text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), cancellationToken);
        File.Move(temp, path, overwrite: true);
    }
}

/// <summary>One "## heading" of a <see cref="BenchReport"/>: free text paragraphs and tables, in the order added.</summary>
public sealed class ReportSection
{
    private readonly List<object> _content = []; // string (Markdown text), ReportTable or ReportChart

    internal ReportSection(string heading)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(heading);
        Heading = heading;
    }

    /// <summary>The section's heading.</summary>
    public string Heading { get; }

    /// <summary>Text (string, Markdown), <see cref="ReportTable"/> and <see cref="ReportChart"/> blocks in order.</summary>
    public IReadOnlyList<object> Content => _content;

    /// <summary>Appends a paragraph of Markdown text.</summary>
    public ReportSection AddText(string markdown)
    {
        ArgumentNullException.ThrowIfNull(markdown);
        _content.Add(markdown.Trim());
        return this;
    }

    /// <summary>Appends an empty table with these columns; fill it with <see cref="ReportTable.AddRow"/>.</summary>
    public ReportTable AddTable(params string[] columns)
    {
        var table = new ReportTable(columns);
        _content.Add(table);
        return table;
    }

    /// <summary>
    /// Appends a line chart (rendered to PNG when the report is written); fill it with <see cref="ReportChart.AddSeries"/>.
    /// <paramref name="slug"/> names the file and must be unique within the report.
    /// </summary>
    public ReportChart AddChart(string slug, string title, string xLabel, string yLabel)
    {
        var chart = new ReportChart(slug, title, xLabel, yLabel);
        _content.Add(chart);
        return chart;
    }

    /// <summary>Appends a table with these columns and rows.</summary>
    public ReportTable AddTable(IReadOnlyList<string> columns, IEnumerable<IReadOnlyList<string>> rows)
    {
        ReportTable table = AddTable([.. columns]);
        foreach (IReadOnlyList<string> row in rows)
        {
            table.AddRow([.. row]);
        }

        return table;
    }

    internal void AppendMarkdown(StringBuilder md)
    {
        md.Append("## ").Append(Heading).Append("\n\n");
        foreach (object block in _content)
        {
            if (block is ReportTable table)
            {
                table.AppendMarkdown(md);
            }
            else if (block is ReportChart chart)
            {
                md.Append(chart.FileName is { } file ? $"![{chart.Title}]({file})" : $"*(chart \"{chart.Title}\" is drawn when the report is written)*").Append("\n\n");
            }
            else
            {
                md.Append((string)block).Append("\n\n");
            }
        }
    }

    internal JsonObject ToJson()
    {
        var content = new JsonArray();
        foreach (object block in _content)
        {
            content.Add(block switch
            {
                ReportTable table => table.ToJson(),
                ReportChart chart => chart.ToJson(),
                _ => new JsonObject { ["type"] = "text", ["text"] = (string)block },
            });
        }

        return new JsonObject { ["heading"] = Heading, ["content"] = content };
    }
}

/// <summary>A Markdown table: column headings and rows of cell text. Columns whose cells are all numbers (or "n/a") are right-aligned.</summary>
public sealed class ReportTable
{
    private readonly List<string[]> _rows = [];

    /// <summary>A table with these column headings.</summary>
    public ReportTable(IReadOnlyList<string> columns)
    {
        if (columns.Count == 0)
        {
            throw new ArgumentException("A table needs at least one column.", nameof(columns));
        }

        Columns = [.. columns];
    }

    /// <summary>Column headings.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Rows of cells, each as long as <see cref="Columns"/>.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Rows => _rows;

    /// <summary>Appends a row; it must have one cell per column.</summary>
    public ReportTable AddRow(params string[] cells)
    {
        if (cells.Length != Columns.Count)
        {
            throw new ArgumentException($"Row has {cells.Length} cells, table has {Columns.Count} columns.", nameof(cells));
        }

        _rows.Add([.. cells]);
        return this;
    }

    internal void AppendMarkdown(StringBuilder md)
    {
        md.Append('|');
        foreach (string column in Columns)
        {
            md.Append(' ').Append(Escape(column)).Append(" |");
        }

        md.Append("\n|");
        for (int c = 0; c < Columns.Count; c++)
        {
            md.Append(IsNumeric(c) ? "---:|" : "---|");
        }

        md.Append('\n');
        foreach (string[] row in _rows)
        {
            md.Append('|');
            foreach (string cell in row)
            {
                md.Append(' ').Append(Escape(cell)).Append(" |");
            }

            md.Append('\n');
        }

        md.Append('\n');
    }

    internal JsonObject ToJson()
    {
        var columns = new JsonArray();
        foreach (string column in Columns)
        {
            columns.Add(column);
        }

        var rows = new JsonArray();
        foreach (string[] row in _rows)
        {
            var cells = new JsonArray();
            foreach (string cell in row)
            {
                cells.Add(cell);
            }

            rows.Add(cells);
        }

        return new JsonObject { ["type"] = "table", ["columns"] = columns, ["rows"] = rows };
    }

    private bool IsNumeric(int column) =>
        _rows.Count > 0 && _rows.All(r => r[column] is "n/a" or "" || double.TryParse(r[column].TrimEnd('%', '×', 'x'), NumberStyles.Float, CultureInfo.InvariantCulture, out _));

    private static string Escape(string cell) => cell.Replace("|", "\\|", StringComparison.Ordinal).ReplaceLineEndings(" ");
}
