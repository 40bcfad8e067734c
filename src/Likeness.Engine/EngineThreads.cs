using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine;

/// <summary>
/// How many CPU threads libtorch's operations use, and how its OpenMP threads wait.
/// <para>
/// libgomp's threads busy-wait between parallel regions unless told otherwise: on a machine whose cores are
/// shared (another engine, the web server, a build) that spinning takes the cores from the work (measured 11–13×
/// slower). The process therefore asks for passive waiting, unless its caller chose a policy. The variable is read
/// once, when libgomp initialises, and only from the C environment (.NET's <c>Environment.SetEnvironmentVariable</c>
/// does not reach it on Linux): <see cref="ConfigureProcess"/> must run before the first TorchSharp call.
/// </para>
/// <para>
/// A passive thread pays a wake-up at every parallel region, which small operations do not earn back: flux-tiny's
/// matrices (160 tokens × 128 wide) run fastest on one thread, so a tiny preset defaults to one and a full-size
/// preset to one per core the process may use (<see cref="Environment.ProcessorCount"/> follows CPU affinity and
/// container limits). The count is an OpenMP setting of the calling thread, so the engine applies it on the thread
/// that runs each training or generation (<see cref="Apply"/>).
/// </para>
/// </summary>
public static class EngineThreads
{
    public const string WaitPolicyVariable = "OMP_WAIT_POLICY";

    /// <summary>Passive OpenMP waiting for this process unless the caller set a policy; call before any TorchSharp use.</summary>
    public static void ConfigureProcess()
    {
        if (OperatingSystem.IsWindows() || Environment.GetEnvironmentVariable(WaitPolicyVariable) is { Length: > 0 }) return;
        _ = setenv(WaitPolicyVariable, "PASSIVE", 0);
    }

    /// <summary>The default thread count for a preset's work on the CPU.</summary>
    public static int DefaultFor(FluxPreset preset) => preset.IsTiny ? 1 : Environment.ProcessorCount;

    /// <summary>Sets libtorch's intra-op thread count for the calling thread (and MKL's) where the work runs on the CPU.</summary>
    public static void Apply(Device device, int threads)
    {
        if (device.type == DeviceType.CPU && get_num_threads() != threads) set_num_threads(threads);
    }

    [DllImport("libc", CharSet = CharSet.Ansi)]
    private static extern int setenv(string name, string value, int overwrite);
}
