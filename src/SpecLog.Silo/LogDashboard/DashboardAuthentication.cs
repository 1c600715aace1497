using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SpecLog.Silo.LogDashboard;

/// <summary>
/// HTTP Basic authentication for the Orleans dashboard and the log page when <c>Silo:Dashboard:Username</c> is set
/// (required when the dashboard listens beyond localhost, unless <c>AllowAnonymous</c>). The health endpoints and the
/// metrics endpoint stay open: probes and scrapers reach them without credentials, and they show no records. Basic
/// credentials travel in clear text: expose the dashboard through TLS (an ingress or a proxy that terminates it).
/// </summary>
internal static class DashboardAuthentication
{
    /// <summary>The realm named in the 401 challenge.</summary>
    public const string Realm = "SpecLog";

    /// <summary>Requires the configured credentials on every path but <paramref name="openPaths"/>; does nothing without a user name.</summary>
    public static void UseDashboardAuthentication(this WebApplication app, DashboardSettings settings, params string[] openPaths)
    {
        if (string.IsNullOrEmpty(settings.Username))
        {
            return;
        }

        var expected = Encoding.UTF8.GetBytes($"{settings.Username}:{settings.Password}");
        app.Use(async (context, next) =>
        {
            var path = context.Request.Path;
            if (openPaths.Any(p => path.StartsWithSegments(p)) || Authorized(context.Request, expected))
            {
                await next(context);
                return;
            }

            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = $"Basic realm=\"{Realm}\", charset=\"UTF-8\"";
            await context.Response.WriteAsync("the SpecLog dashboard needs the user name and password of Silo:Dashboard:Username and Password\n");
        });
    }

    private static bool Authorized(HttpRequest request, byte[] expected)
    {
        if (!AuthenticationHeaderValue.TryParse(request.Headers.Authorization, out var header)
            || !string.Equals(header.Scheme, "Basic", StringComparison.OrdinalIgnoreCase)
            || header.Parameter is null)
        {
            return false;
        }

        var given = new byte[header.Parameter.Length];
        if (!Convert.TryFromBase64String(header.Parameter, given, out var length))
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(given.AsSpan(0, length), expected);
    }
}
