using System.Diagnostics;
using System.Reflection;

namespace SpecLog.Silo.Tests;

/// <summary>Programs the tests run as processes (the fraud-detection sample, the speclog tool), found through the dll paths recorded at build time.</summary>
internal static class RecordedDll
{
    /// <summary>How to run the dll recorded under <paramref name="key"/> (assembly metadata) with <paramref name="arguments"/>, its output redirected.</summary>
    public static ProcessStartInfo StartInfo(string key, IEnumerable<string> arguments)
    {
        var dll = typeof(RecordedDll).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == key).Value!;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        return start;
    }
}
