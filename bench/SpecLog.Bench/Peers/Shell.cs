using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace SpecLog.Bench.Peers;

/// <summary>Running commands, finding executables and free loopback ports, and installing Debian packages for the peers.</summary>
internal static partial class Shell
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuidNative();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);

    private const int SIGTERM = 15;

    public static bool IsRoot => OperatingSystem.IsLinux() && GetEuidNative() == 0;

    /// <summary>Asks a process to stop (SIGTERM), then kills it if it has not stopped within <paramref name="grace"/>.</summary>
    public static void Terminate(Process process, TimeSpan grace)
    {
        try
        {
            if (process.HasExited)
            {
                return;
            }

            if (OperatingSystem.IsLinux())
            {
                _ = KillNative(process.Id, SIGTERM);
            }

            if (!process.WaitForExit(grace))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(TimeSpan.FromSeconds(5));
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    public sealed record Result(int ExitCode, string Output)
    {
        public bool Ok => ExitCode == 0;
    }

    /// <summary>Runs a command to completion, stdout and stderr together, with an optional environment and time limit.</summary>
    public static Result Run(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }
        }

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new Result(-1, ex.Message);
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            lock (output)
            {
                return new Result(-2, output + "\n(timed out)");
            }
        }

        process.WaitForExit();
        lock (output)
        {
            return new Result(process.ExitCode, output.ToString());
        }
    }

    /// <summary>Runs a command as the PostgreSQL service user when we are root (initdb and postgres refuse root).</summary>
    public static Result RunAsPostgres(string file, IEnumerable<string> args, TimeSpan? timeout = null) =>
        IsRoot ? Run("runuser", ["-u", "postgres", "--", file, .. args], timeout: timeout) : Run(file, args, timeout: timeout);

    /// <summary>The full path of an executable on PATH or in one of <paramref name="extraDirectories"/>; null if none.</summary>
    public static string? Find(string name, params string[] extraDirectories)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(extraDirectories).Concat(["/usr/sbin", "/usr/bin", "/sbin", "/bin"]))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>A TCP port on 127.0.0.1 that nothing listens on right now (asked of the kernel, so not a default port).</summary>
    public static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Waits until something accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<bool> WaitForPortAsync(int port, TimeSpan timeout, Func<bool>? stillAlive = null)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (stillAlive is not null && !stillAlive())
            {
                return false;
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        return false;
    }

    private static bool s_aptUpdated;

    /// <summary>
    /// Installs Debian packages non-interactively (we must be root and have apt-get). A temporary policy-rc.d keeps the
    /// packages' maintainer scripts from starting system-wide daemons on the default ports; we start our own instances.
    /// </summary>
    public static bool AptInstall(IReadOnlyList<string> packages, out string message)
    {
        if (!OperatingSystem.IsLinux() || Find("apt-get") is not { } aptGet)
        {
            message = "apt-get is not available on this machine";
            return false;
        }

        if (!IsRoot)
        {
            message = "installing packages needs root (run as root, or install " + string.Join(' ', packages) + " by hand)";
            return false;
        }

        const string policy = "/usr/sbin/policy-rc.d";
        var ownPolicy = false;
        if (!File.Exists(policy))
        {
            File.WriteAllText(policy, "#!/bin/sh\n# written by SpecLog.Bench while it installs peer servers; removed afterwards\nexit 101\n");
            File.SetUnixFileMode(policy, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            ownPolicy = true;
        }

        try
        {
            var env = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
            string[] install = ["-y", "-q", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "install", .. packages];
            Console.WriteLine($"  peers: apt-get install {string.Join(' ', packages)} ...");
            var result = Run(aptGet, install, env, TimeSpan.FromMinutes(8));
            if (!result.Ok && !s_aptUpdated)
            {
                Console.WriteLine("  peers: apt-get update (the package lists may be stale) ...");
                s_aptUpdated = true;
                Run(aptGet, ["-q", "update"], env, TimeSpan.FromMinutes(5));
                result = Run(aptGet, install, env, TimeSpan.FromMinutes(8));
            }

            message = result.Ok
                ? "installed " + string.Join(' ', packages) + " from the Debian packages"
                : $"apt-get install {string.Join(' ', packages)} failed (exit {result.ExitCode}): {Tail(result.Output, 400)}";
            return result.Ok;
        }
        finally
        {
            if (ownPolicy)
            {
                File.Delete(policy);
            }
        }
    }

    public static string Tail(string text, int chars) => text.Length <= chars ? text.Trim() : "…" + text[^chars..].Trim();
}
