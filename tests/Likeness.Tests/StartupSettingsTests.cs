using Likeness.Hosting;
using Microsoft.Extensions.Options;

namespace Likeness.Tests;

/// <summary>A process refuses to start on settings it could only fail on at its first job, saying why.</summary>
public sealed class StartupSettingsTests
{
    private static Dictionary<string, string?> Settings(params (string Key, string Value)[] settings)
    {
        var data = Directory.CreateTempSubdirectory().FullName;
        var overrides = new Dictionary<string, string?> { ["Likeness:Data"] = data };
        foreach (var (key, value) in settings) overrides[key] = value;
        return overrides;
    }

    [Fact]
    public void A_flux_dev_worker_without_its_files_does_not_start_and_names_each_missing_one()
    {
        var models = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllBytes(Path.Combine(models, "ae.safetensors"), []);
        Directory.CreateDirectory(Path.Combine(models, "tokenizer"));
        var error = Assert.Throws<OptionsValidationException>(() =>
            LikenessHost.BuildWorker(Settings(("Likeness:EnginePreset", "flux-dev"), ("Likeness:Models", models))));
        Assert.Contains("flux1-dev.safetensors (or transformer/)", error.Message);
        Assert.Contains("text_encoder_2/*.safetensors", error.Message);
        Assert.Contains("tokenizer/vocab.json + merges.txt", error.Message);
        Assert.DoesNotContain("ae.safetensors,", error.Message);

        var none = Assert.Throws<OptionsValidationException>(() => LikenessHost.BuildWorker(Settings(("Likeness:EnginePreset", "flux-schnell"))));
        Assert.Contains("flux1-schnell.safetensors", none.Message);
    }

    [Fact]
    public void Processes_that_run_no_engine_start_without_the_weights()
    {
        using var api = LikenessHost.BuildApp(Settings(("Likeness:EnginePreset", "flux-dev"), ("Likeness:Role", "api")), withHttp: false);
        using var webhooks = LikenessHost.BuildWorker(Settings(("Likeness:EnginePreset", "flux-dev"), ("Likeness:Queues", "caption,webhook")));
        Assert.NotNull(api.Services);
        Assert.NotNull(webhooks.Services);
    }

    [SkippableFact]
    public void A_pinned_cuda_device_that_libtorch_cannot_find_stops_the_start()
    {
        Skip.If(TorchSharp.torch.cuda.is_available(), "this machine has CUDA");
        var error = Assert.Throws<OptionsValidationException>(() => LikenessHost.BuildWorker(Settings(("Likeness:EngineDevice", "cuda:1"))));
        Assert.Contains("no CUDA device", error.Message);
        using var cpu = LikenessHost.BuildWorker(Settings(("Likeness:EngineDevice", "cpu")));
        Assert.NotNull(cpu.Services);
    }

    [Fact]
    public void An_unusable_blob_setting_stops_the_start()
    {
        var error = Assert.Throws<OptionsValidationException>(() => LikenessHost.BuildWorker(Settings(("Likeness:Blobs", "ftp://somewhere"))));
        Assert.Contains("Unsupported --blobs 'ftp://somewhere'", error.Message);
    }
}
