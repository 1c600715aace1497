using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The Azurite Azure Storage emulator (table service for cluster membership, blob service for consumer checkpoints,
/// queue service unused) as a child process, on free loopback ports with its data in a fresh temporary folder;
/// disposing stops it and deletes the folder. Azurite (npm package <c>azurite</c>) is
/// installed on first use into <c>.tools/azurite</c> at the repository root, as <c>scripts/azurite.sh</c> does.
/// </summary>
internal sealed class AzuriteServer : IAsyncDisposable
{
    /// <summary>The pinned npm package version.</summary>
    public const string Version = "3.37.0";

    // Azurite's well-known development account (public; the emulator accepts only it).
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly SemaphoreSlim s_install = new(1, 1);

    private readonly Process _process;
    private readonly string _dataDirectory;

    private AzuriteServer(Process process, string dataDirectory, int port, int blobPort)
    {
        _process = process;
        _dataDirectory = dataDirectory;
        Port = port;
        BlobPort = blobPort;
    }

    /// <summary>The table service's port.</summary>
    public int Port { get; }

    /// <summary>The blob service's port.</summary>
    public int BlobPort { get; }

    /// <summary>A connection string for the emulator's table and blob endpoints.</summary>
    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};" +
        $"TableEndpoint=http://127.0.0.1:{Port}/devstoreaccount1;BlobEndpoint=http://127.0.0.1:{BlobPort}/devstoreaccount1;";

    /// <summary>Installs Azurite if needed, starts it and waits until its port accepts connections.</summary>
    public static async Task<AzuriteServer> StartAsync(CancellationToken cancellationToken)
    {
        var bin = await EnsureInstalledAsync(cancellationToken);
        var port = SiloProcess.FreePort();
        var blobPort = SiloProcess.FreePort();
        var queuePort = SiloProcess.FreePort();
        var data = Directory.CreateTempSubdirectory("speclog-azurite-").FullName;
        var start = new ProcessStartInfo(bin)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var culture = System.Globalization.CultureInfo.InvariantCulture;
        foreach (var arg in new[]
        {
            "--tableHost", "127.0.0.1", "--tablePort", port.ToString(culture), "--blobHost", "127.0.0.1", "--blobPort", blobPort.ToString(culture),
            "--queueHost", "127.0.0.1", "--queuePort", queuePort.ToString(culture), "--location", data, "--skipApiVersionCheck", "--silent",
        })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start Azurite.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new AzuriteServer(process, data, port, blobPort);
        var deadline = Stopwatch.GetTimestamp() + 30 * Stopwatch.Frequency;
        while (true)
        {
            if (process.HasExited)
            {
                var code = process.ExitCode; // read before the dispose releases the process
                await server.DisposeAsync();
                throw new InvalidOperationException($"Azurite exited at start with code {code}.");
            }

            try
            {
                foreach (var p in new[] { port, blobPort })
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, p, cancellationToken);
                }

                return server;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(100, cancellationToken);
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(15)).Token);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the folder is under the temp directory.
        }
    }

    /// <summary>The <c>azurite</c> executable (all services) under <c>.tools/azurite</c>, installed with npm if missing.</summary>
    private static async Task<string> EnsureInstalledAsync(CancellationToken cancellationToken)
    {
        // Two tests starting at once must not run two npm installs into the same folder (the second fails).
        await s_install.WaitAsync(cancellationToken);
        try
        {
            return await InstallAsync(cancellationToken);
        }
        finally
        {
            s_install.Release();
        }
    }

    private static async Task<string> InstallAsync(CancellationToken cancellationToken)
    {
        var root = RepositoryRoot();
        var prefix = Path.Combine(root, ".tools", "azurite");
        var bin = Path.Combine(prefix, "node_modules", ".bin", "azurite");
        var installed = Path.Combine(prefix, $".installed-{Version}"); // written last: a half-done install is done again
        if (File.Exists(installed) && File.Exists(bin))
        {
            return bin;
        }

        // Other processes (a sample the tests run, a second test run) install into the same folder: one at a time.
        Directory.CreateDirectory(prefix);
        using var installLock = await InstallLock.AcquireAsync(Path.Combine(root, ".tools", "azurite.install.lock"), cancellationToken);
        if (File.Exists(installed) && File.Exists(bin))
        {
            return bin;
        }

        var install = new ProcessStartInfo("npm")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "install", "--silent", "--no-audit", "--no-fund", "--prefix", prefix, $"azurite@{Version}" })
        {
            install.ArgumentList.Add(arg);
        }

        using var npm = Process.Start(install) ?? throw new InvalidOperationException("Could not run npm to install Azurite (is Node.js installed?).");
        var stderr = npm.StandardError.ReadToEndAsync(cancellationToken);
        await npm.StandardOutput.ReadToEndAsync(cancellationToken);
        await npm.WaitForExitAsync(cancellationToken);
        if (npm.ExitCode != 0 || !File.Exists(bin))
        {
            throw new InvalidOperationException($"npm install azurite@{Version} failed (exit {npm.ExitCode}): {await stderr}");
        }

        await File.WriteAllTextAsync(installed, Version, cancellationToken);
        return bin;
    }

    /// <summary>The repository's root folder (the one holding SpecLogOrleans.sln) above the test's output.</summary>
    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SpecLogOrleans.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("The repository root (SpecLogOrleans.sln) is not above the test's output directory.");
    }
}
