namespace Likeness.Tests.Infrastructure;

/// <summary>What a test finds on disk in a data folder.</summary>
public static class DataFolders
{
    /// <summary>Every file under <paramref name="folder"/> (relative paths), or none where it does not exist.</summary>
    public static List<string> Files(string folder) => !Directory.Exists(folder)
        ? []
        : Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f)).Order().ToList();

    /// <summary>Waits until <paramref name="condition"/> holds; fails with <paramref name="what"/> when it never does.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, Func<string> what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, what());
            await Task.Delay(50);
        }
    }
}
