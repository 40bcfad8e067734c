using System.Diagnostics;

namespace Likeness.Tests.Infrastructure;

/// <summary>The real executable (likeness.dll from the test output) as a child process.</summary>
public sealed class LikenessProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];
    private readonly List<string> _errors = [];

    private LikenessProcess(Process process) => _process = process;

    public bool HasExited => _process.HasExited;
    public string Output { get { lock (_output) return string.Join('\n', _output); } }
    /// <summary>What it wrote to stderr alone (also part of <see cref="Output"/>).</summary>
    public string[] Errors { get { lock (_output) return [.. _errors]; } }

    /// <summary>Test settings every child gets: the lowered step floor, short leases, fast polling.</summary>
    public static readonly Dictionary<string, string> TestEnvironment = new()
    {
        ["LIKENESS_TRAINING_MIN_STEPS"] = "4",
        ["Likeness__Training__CheckpointEvery"] = "2",
        ["Likeness__Workers__Lease"] = "00:00:08",
        ["Likeness__EngineThreads"] = "1",
        ["OMP_WAIT_POLICY"] = "PASSIVE",
        ["Likeness__Workers__PollInterval"] = "00:00:00.200",
        ["Likeness__Webhooks__RetrySchedule__0"] = "00:00:00.500",
    };

    public static LikenessProcess Start(params string[] args) => Start(new Dictionary<string, string?>(), args);

    /// <summary>With <paramref name="environment"/> over the test settings (a null value removes the variable).</summary>
    public static LikenessProcess Start(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet", ["exec", Path.Combine(AppContext.BaseDirectory, "likeness.dll"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (k, v) in TestEnvironment) info.Environment[k] = v;
        foreach (var (k, v) in environment)
            if (v is null) info.Environment.Remove(k);
            else info.Environment[k] = v;
        var process = new LikenessProcess(Process.Start(info)!);
        process._process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (process._output) process._output.Add(e.Data); };
        process._process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (process._output)
            {
                process._output.Add(e.Data);
                process._errors.Add(e.Data);
            }
        };
        process._process.BeginOutputReadLine();
        process._process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Runs a verb to completion and returns its output lines.</summary>
    public static Task<string[]> RunAsync(params string[] args) => RunAsync(new Dictionary<string, string?>(), args);

    public static async Task<string[]> RunAsync(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        using var p = Start(environment, args);
        await p._process.WaitForExitAsync();
        p._process.WaitForExit(); // flushes the redirected output
        Assert.True(p._process.ExitCode == 0, $"likeness {string.Join(' ', args)} exited {p._process.ExitCode}: {p.Output}");
        return p.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public async Task WaitForHealthAsync(HttpClient client)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            Assert.False(HasExited, "likeness exited: " + Output);
            try { if ((await client.GetAsync("/health")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            Assert.True(DateTime.UtcNow < deadline, "likeness never became healthy: " + Output);
            await Task.Delay(100);
        }
    }

    /// <summary>Waits for the process to end by itself and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        _process.WaitForExit(); // flushes the redirected output
        return _process.ExitCode;
    }

    public void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _process.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
