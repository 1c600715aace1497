using System.Net;

namespace SpecLog.Silo.Tests;

/// <summary>HTTP GETs to a silo's dashboard port (health endpoints, metrics).</summary>
internal static class SiloHttp
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>The status code and body of <paramref name="url"/>; code 0 with the error when nothing answers (not listening yet, or gone).</summary>
    public static async Task<(HttpStatusCode Code, string Text)> GetAsync(string url, CancellationToken ct)
    {
        try
        {
            using var response = await Http.GetAsync(url, ct);
            return (response.StatusCode, (await response.Content.ReadAsStringAsync(ct)).TrimEnd('\n'));
        }
        catch (HttpRequestException e)
        {
            return (0, e.Message);
        }
        catch (TaskCanceledException e) when (!ct.IsCancellationRequested)
        {
            return (0, e.Message); // no answer within the client's timeout
        }
    }
}
