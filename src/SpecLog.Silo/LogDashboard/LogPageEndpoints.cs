using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace SpecLog.Silo.LogDashboard;

/// <summary>
/// The log's own page beside the Orleans dashboard: <c>GET {LogPath}</c> serves the page (one HTML file with its
/// script, embedded in the silo), which reads <c>GET {LogPath}/api/state</c> (a <see cref="LogSnapshot"/> as JSON)
/// every second and draws it.
/// </summary>
internal static class LogPageEndpoints
{
    /// <summary>The state endpoint below the page's path.</summary>
    public const string StatePath = "/api/state";

    private const string PageResource = "SpecLog.Silo.LogDashboard.LogPage.html";

    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void AddLogPage(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<LogStateCollector>();
    }

    public static void MapLogPage(this WebApplication app, string logPath, string dashboardPath)
    {
        var page = LoadPage().Replace("{{DASHBOARD_PATH}}", dashboardPath + "/", StringComparison.Ordinal);
        app.MapGet(logPath, () => Results.Content(page, "text/html; charset=utf-8"));
        app.MapGet(logPath + StatePath, async (LogStateCollector collector, HttpContext context) =>
            Results.Json(await collector.GetAsync(context.RequestAborted), s_json));
    }

    private static string LoadPage()
    {
        using var stream = typeof(LogPageEndpoints).Assembly.GetManifestResourceStream(PageResource)
            ?? throw new InvalidOperationException($"The silo lacks its embedded log page ({PageResource}).");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
