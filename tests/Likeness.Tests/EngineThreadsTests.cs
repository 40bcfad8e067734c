using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>
/// The engine's OpenMP threads wait passively unless the caller chose otherwise, whatever environment the process
/// was started from (issue #11: spinning threads made a shared machine 11–13× slower). libgomp reports the settings
/// it initialised with on <c>OMP_DISPLAY_ENV=VERBOSE</c>; its spin count is what busy-waiting means (300,000 spins
/// by default, 0 when passive).
/// </summary>
public sealed class EngineThreadsTests
{
    private static async Task<string> OpenMpSettings(string? waitPolicy)
    {
        var output = Path.Combine(Directory.CreateTempSubdirectory().FullName, "image.png");
        var lines = await LikenessProcess.RunAsync(new Dictionary<string, string?>
        {
            ["OMP_WAIT_POLICY"] = waitPolicy,
            ["GOMP_SPINCOUNT"] = null,
            ["OMP_DISPLAY_ENV"] = "VERBOSE",
        }, "engine", "generate", "--prompt", "a photo of a red apple", "--output", output, "--steps", "2");
        Assert.True(File.Exists(output));
        return string.Join('\n', lines);
    }

    [Fact]
    public async Task A_process_started_without_a_wait_policy_runs_the_engine_with_passive_threads()
    {
        var settings = await OpenMpSettings(waitPolicy: null);
        Assert.Contains("OMP_WAIT_POLICY = 'PASSIVE'", settings);
        Assert.Contains("GOMP_SPINCOUNT = '0'", settings);
    }

    [Fact]
    public async Task A_wait_policy_the_caller_set_is_kept()
    {
        var settings = await OpenMpSettings(waitPolicy: "ACTIVE");
        Assert.Contains("OMP_WAIT_POLICY = 'ACTIVE'", settings);
        Assert.DoesNotContain("GOMP_SPINCOUNT = '0'", settings);
    }
}
