using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SpecLog.Silo.LogDashboard;

/// <summary>
/// Makes the log page reachable from the Orleans dashboard: the dashboard's own page (a bundled single-page app this
/// project cannot change) is served with one more element, a fixed link to the log page.
/// </summary>
internal static class DashboardLink
{
    /// <summary>The link's element id (the browser test clicks it).</summary>
    public const string ElementId = "speclog-log-page-link";

    public static void UseLogPageLink(this WebApplication app, string dashboardPath, string logPath)
    {
        var link = $"<a id=\"{ElementId}\" href=\"{logPath}\" style=\"position:fixed;right:16px;bottom:16px;z-index:10000;"
            + "padding:10px 16px;border-radius:6px;background:#0b5cad;color:#fff;font:600 14px system-ui,sans-serif;"
            + "text-decoration:none;box-shadow:0 2px 8px rgba(0,0,0,.3)\">SpecLog: shards, windows, ordering &rarr;</a>";
        var linkBytes = Encoding.UTF8.GetBytes(link);
        app.Use(async (context, next) =>
        {
            var path = context.Request.Path.Value ?? "";
            if (!HttpMethods.IsGet(context.Request.Method) || !IsDashboardPage(path, dashboardPath))
            {
                await next(context);
                return;
            }

            // Ask for the page uncompressed, so the link can be put in before </body>.
            context.Request.Headers.AcceptEncoding = "identity";
            var original = context.Response.Body;
            using var buffer = new MemoryStream();
            context.Response.Body = buffer;
            try
            {
                await next(context);
            }
            finally
            {
                context.Response.Body = original;
            }

            var body = buffer.ToArray();
            if (context.Response.ContentType?.StartsWith("text/html", StringComparison.OrdinalIgnoreCase) == true)
            {
                body = Insert(body, linkBytes);
                context.Response.ContentLength = body.Length;
            }

            await original.WriteAsync(body, context.RequestAborted);
        });
    }

    private static bool IsDashboardPage(string path, string dashboardPath) =>
        path == dashboardPath + "/" || path == dashboardPath + "/index.html" || (dashboardPath.Length == 0 && path == "/");

    private static byte[] Insert(byte[] html, byte[] link)
    {
        var end = html.AsSpan().LastIndexOf("</body>"u8);
        if (end < 0)
        {
            return [.. html, .. link];
        }

        return [.. html.AsSpan(0, end), .. link, .. html.AsSpan(end)];
    }
}
