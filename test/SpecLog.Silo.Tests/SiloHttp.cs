using System.Net;

namespace SpecLog.Silo.Tests;

/// <summary>HTTP GETs to a silo's dashboard port (health endpoints, metrics, the log page), with HTTP Basic credentials when given.</summary>
internal static class SiloHttp
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>The status code and body of <paramref name="url"/>; code 0 with the error when nothing answers (not listening yet, or gone).</summary>
    public static async Task<(HttpStatusCode Code, string Text)> GetAsync(string url, CancellationToken ct, (string User, string Password)? basic = null)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (basic is { } credentials)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
                    "Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{credentials.User}:{credentials.Password}")));
            }

            using var response = await Http.SendAsync(request, ct);
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
