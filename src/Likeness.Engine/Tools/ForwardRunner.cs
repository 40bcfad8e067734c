using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tools;

/// <summary>
/// <c>likeness engine forward</c>: one fp32 CPU forward of a transformer built from a config (reference or diffusers
/// form; by default the diffusers folder's own <c>config.json</c>), with weights in any published layout and
/// reference inputs, writing the F32 tensor <c>out</c>.
/// </summary>
public static class ForwardRunner
{
    public static void Run(string? configPath, string weightsPath, string inputsPath, string outputPath, string? loraPath = null, float loraStrength = 1f)
    {
        var folderConfig = Path.Combine(DiffusersLayout.Folder(weightsPath), "config.json");
        configPath ??= File.Exists(folderConfig) ? folderConfig : throw new ArgumentException($"No --config given and no config.json beside {weightsPath}.");
        var p = FluxParams.FromJson(File.ReadAllText(configPath));
        using var model = new FluxModel(p);
        // A file or shards (folder or index json), in the reference or the diffusers layout.
        model.LoadWeights(weightsPath);
        model.eval();
        // Any adapter layout (native, PEFT/diffusers, kohya), told apart by its keys.
        using var lora = loraPath is null ? null : Lora.LoraAdapter.Load(model, loraPath);
        if (lora is not null) lora.Strength = loraStrength;

        using var inputs = SafeTensorsFile.Open(inputsPath);
        Tensor Input(string name) => inputs.Contains(name)
            ? inputs.Read(name, ScalarType.Float32)
            : throw new InvalidDataException($"{inputsPath} lacks the input '{name}'.");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var guidance = p.GuidanceEmbed ? Input("guidance") : null;
        var output = model.forward(Input("img"), Input("img_ids"), Input("txt"), Input("txt_ids"), Input("timesteps"), Input("y"), guidance);
        SafeTensorsFile.Save(outputPath, new Dictionary<string, Tensor> { ["out"] = output.to_type(ScalarType.Float32).contiguous() });
    }
}
