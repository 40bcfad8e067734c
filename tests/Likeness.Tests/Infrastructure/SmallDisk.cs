using System.Diagnostics;

namespace Likeness.Tests.Infrastructure;

/// <summary>
/// A small tmpfs mounted on a fresh folder, to fill the disk for real. Mounting needs root (or CAP_SYS_ADMIN);
/// <see cref="TryMount"/> says why when it cannot, for the test to skip with that reason.
/// </summary>
public sealed class SmallDisk : IDisposable
{
    private SmallDisk(string path) => Path = path;

    public string Path { get; }

    public static SmallDisk? TryMount(int megabytes, out string? whyNot)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "likeness-tests", "disk-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={megabytes}m,mode=0700", "tmpfs", path);
        if (code == 0)
        {
            whyNot = null;
            return new SmallDisk(path);
        }
        Directory.Delete(path);
        whyNot = $"A full disk needs a small tmpfs, and 'mount -t tmpfs' failed here ({code}): {output.Trim()}";
        return null;
    }

    public void Dispose()
    {
        if (Run("umount", Path).Code != 0) Run("umount", "-l", Path);
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e) { return (-1, e.Message); }
    }
}
