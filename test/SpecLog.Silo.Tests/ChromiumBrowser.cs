using System.Diagnostics;
using Microsoft.Playwright;

namespace SpecLog.Silo.Tests;

/// <summary>
/// Debian's <c>chromium</c>, driven through Playwright for .NET: found on the PATH, or installed with
/// <c>apt-get install chromium</c> on first use (as <c>.ci/run</c> does), one installer at a time across processes.
/// Playwright's own browser downloads are never used.
/// </summary>
internal static class ChromiumBrowser
{
    private static readonly string[] s_names = ["chromium", "chromium-browser"];

    /// <summary>Starts Playwright and a headless Chromium; dispose both (browser first).</summary>
    public static async Task<(IPlaywright Playwright, IBrowser Browser)> LaunchAsync(CancellationToken cancellationToken)
    {
        var executable = await LocateOrInstallAsync(cancellationToken);
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = executable,
                Headless = true,
                Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"], // root in a container: no sandbox
            });
            return (playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    private static async Task<string> LocateOrInstallAsync(CancellationToken cancellationToken)
    {
        if (Locate() is { } found)
        {
            return found;
        }

        using var installLock = await InstallLock.AcquireAsync(Path.Combine(Path.GetTempPath(), "speclog-chromium.install.lock"), cancellationToken);
        if (Locate() is { } installedMeanwhile)
        {
            return installedMeanwhile;
        }

        if (!OperatingSystem.IsLinux() || Environment.UserName != "root" || !File.Exists("/usr/bin/apt-get"))
        {
            throw new InvalidOperationException("Chromium is not installed and cannot be installed here: run `sudo apt-get install -y chromium` (Debian/Ubuntu) first.");
        }

        await RunAsync("apt-get", ["update", "-qq"], cancellationToken);
        await RunAsync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "chromium"], cancellationToken);
        return Locate() ?? throw new InvalidOperationException("apt-get installed chromium, but no chromium executable is on the PATH.");
    }

    private static string? Locate() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(dir => s_names.Select(name => Path.Combine(dir, name)))
            .FirstOrDefault(File.Exists);

    private static async Task RunAsync(string file, string[] args, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not run {file}.");
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed (exit {process.ExitCode}): {await stderr}");
        }
    }
}
