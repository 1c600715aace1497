using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace SpecLog.Silo.Observability;

/// <summary>
/// <c>/healthz</c> (liveness: the process serves HTTP) and <c>/readyz</c> (readiness: <see cref="LogReadinessCheck"/>),
/// ASP.NET Core health checks on the dashboard's port; each answers 200 or 503 with one line of text saying why.
/// </summary>
internal static class HealthEndpoints
{
    public const string Liveness = "/healthz";
    public const string Readiness = "/readyz";

    public static void AddSiloHealthChecks(this IServiceCollection services) =>
        services.AddHealthChecks()
            .AddCheck("process", () => HealthCheckResult.Healthy("the silo process serves"), tags: ["live"])
            .AddCheck<LogReadinessCheck>("log", tags: ["ready"]);

    public static void MapSiloHealthChecks(this WebApplication app)
    {
        app.MapHealthChecks(Liveness, new HealthCheckOptions { Predicate = r => r.Tags.Contains("live"), ResponseWriter = WriteAsync });
        app.MapHealthChecks(Readiness, new HealthCheckOptions { Predicate = r => r.Tags.Contains("ready"), ResponseWriter = WriteAsync });
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "text/plain; charset=utf-8";
        var reasons = report.Entries.Values.Select(e => e.Description ?? e.Status.ToString());
        return context.Response.WriteAsync($"{report.Status}: {string.Join("; ", reasons)}\n");
    }
}
