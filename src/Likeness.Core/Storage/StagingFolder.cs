namespace Likeness.Core.Storage;

/// <summary>
/// One upload's private folder under the staging root. Its request holds a lock file open (exclusively) for as long as
/// it lives, so a sweeper in any process tells a folder in use from one whose process died: the OS drops the lock
/// with the process. Before the accepted photos are copied into the blob store the request writes the LoRA id they
/// are stored under into the folder: an interrupted copy is thereby recorded, and the sweeper that finds the folder
/// abandoned removes those photos unless that LoRA was committed.
/// </summary>
public sealed class StagingFolder : IDisposable
{
    private const string LockName = ".lock";
    private const string LoraName = ".lora";
    private readonly FileStream _lock;

    private StagingFolder(string path, FileStream held)
    {
        Path = path;
        _lock = held;
    }

    public string Path { get; }

    /// <summary>A new folder under <paramref name="root"/>, held until disposed.</summary>
    public static StagingFolder Create(string root)
    {
        var path = System.IO.Path.Combine(root, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        try { return new StagingFolder(path, Hold(path, FileMode.CreateNew)); }
        catch
        {
            TryDelete(path);
            throw;
        }
    }

    /// <summary>Records that the photos are about to be stored under <paramref name="loraId"/>.</summary>
    public void RecordLora(string loraId) => File.WriteAllText(System.IO.Path.Combine(Path, LoraName), loraId);

    /// <summary>Releases the folder and removes it with everything staged in it.</summary>
    public void Dispose()
    {
        _lock.Dispose();
        TryDelete(Path);
    }

    /// <summary>
    /// Takes <paramref name="folder"/> over when no live request holds it; null while one does. A folder without a lock
    /// file counts as abandoned only once <paramref name="olderThan"/> has passed (it may be being made this moment).
    /// </summary>
    public static Abandoned? TryTakeAbandoned(string folder, DateTimeOffset olderThan)
    {
        FileStream held;
        try { held = Hold(folder, FileMode.Open); }
        catch (FileNotFoundException)
        {
            if (Directory.GetLastWriteTimeUtc(folder) >= olderThan.UtcDateTime) return null;
            return new Abandoned(folder, null, RecordedLora(folder));
        }
        catch (DirectoryNotFoundException) { return null; }
        catch (IOException) { return null; } // locked: its request is alive
        return new Abandoned(folder, held, RecordedLora(folder));
    }

    /// <summary>The LoRA whose photos the folder's request is (or was) copying into the blob store, if it began.</summary>
    public static string? RecordedLora(string folder)
    {
        var file = System.IO.Path.Combine(folder, LoraName);
        try { return File.Exists(file) ? File.ReadAllText(file).Trim() : null; }
        catch (IOException) { return null; }
    }

    // FileShare.None is an exclusive flock on Unix and a share-mode lock on Windows: a second open, in this process or
    // another, fails while the first is open, and the lock goes with the process however it ends.
    private static FileStream Hold(string folder, FileMode mode) =>
        new(System.IO.Path.Combine(folder, LockName), mode, FileAccess.ReadWrite, FileShare.None);

    private static void TryDelete(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (IOException) { } // the next sweep takes it
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>A folder whose request is gone, held by the sweeper; <see cref="LoraId"/> names a copy it had begun.</summary>
    public sealed class Abandoned(string folder, FileStream? held, string? loraId) : IDisposable
    {
        public string? LoraId { get; } = loraId;

        /// <summary>Removes the folder.</summary>
        public void Dispose()
        {
            held?.Dispose();
            TryDelete(folder);
        }
    }
}
