using System.Collections.Concurrent;
using System.Diagnostics;

namespace SpecLog.Silo.Tests;

/// <summary>Sample applications run as processes by the tests: started from their recorded dlls with their output captured, killed with SIGKILL.</summary>
internal static class SampleProcess
{
    /// <summary>Starts the dll recorded under <paramref name="key"/> with <paramref name="arguments"/>; its lines go to <paramref name="output"/> tagged with <paramref name="name"/>.</summary>
    public static Process Start(string key, string name, ConcurrentQueue<string> output, string[] arguments)
    {
        var process = new Process { StartInfo = RecordedDll.StartInfo(key, arguments) };
        process.OutputDataReceived += (_, e) => output.Enqueue($"[{name} out] {e.Data}");
        process.ErrorDataReceived += (_, e) => output.Enqueue($"[{name} err] {e.Data}");
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>SIGKILL: no shutdown code runs; returns once the process is gone.</summary>
    public static void Kill(Process process, ConcurrentQueue<string> output, string name)
    {
        output.Enqueue($"[{name}] --- kill -9 (pid {process.Id}) ---");
        process.Kill(entireProcessTree: true);
        process.WaitForExit(TimeSpan.FromSeconds(15));
    }
}
