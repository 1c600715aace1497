namespace SpecLog.Silo.Tests;

/// <summary>A fresh folder under the temporary directory for one test's processes; disposing deletes it (best effort).</summary>
internal sealed class TempFolder(string prefix) : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the folder is under the temporary directory.
        }
    }
}
