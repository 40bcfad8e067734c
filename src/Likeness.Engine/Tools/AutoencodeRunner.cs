using Likeness.Engine.Autoencoder;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tools;

/// <summary>
/// <c>likeness engine autoencode</c>: the autoencoder's counterpart of <see cref="ForwardRunner"/>. Builds the autoencoder
/// from a config (reference <c>AutoEncoderParams</c> or diffusers <c>AutoencoderKL</c> form), loads weights with the
/// reference keys and, in fp32 on the CPU, writes F32 <c>latent</c> = encode(<c>image</c>) when an image is given and
/// <c>decoded</c> = decode of the given <c>latent</c>, or else of the one just encoded.
/// </summary>
public static class AutoencodeRunner
{
    public static void Run(string configPath, string weightsPath, string inputsPath, string outputPath)
    {
        var p = AutoEncoderParams.FromJson(File.ReadAllText(configPath));
        using var inputs = SafeTensorsFile.Open(inputsPath);
        // Checked before the weights load, which is the slow part for the real autoencoder.
        var image = Declared(inputs, "image", p.InChannels);
        var latent = Declared(inputs, "latent", p.ZChannels);
        if (!image && !latent)
            throw new InvalidDataException($"{inputsPath} holds neither 'image' [B, {p.InChannels}, H, W] nor 'latent' [B, {p.ZChannels}, h, w]: nothing to encode or decode.");

        using var model = new AutoEncoder(p);
        model.LoadWeights(weightsPath);
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var outputs = new Dictionary<string, Tensor>();
        if (image) outputs["latent"] = model.Encode(inputs.Read("image", ScalarType.Float32));
        // A given latent wins over the encoded one, so that decode can be checked on its own inputs.
        var toDecode = latent ? inputs.Read("latent", ScalarType.Float32) : outputs["latent"];
        outputs["decoded"] = model.Decode(toDecode);
        SafeTensorsFile.Save(outputPath, outputs.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float32).contiguous()));
    }

    /// <summary>Whether the inputs hold <paramref name="name"/>; refuses it when it is not 4-D with the config's channels.</summary>
    private static bool Declared(SafeTensorsReader inputs, string name, int channels)
    {
        if (!inputs.Contains(name)) return false;
        var shape = inputs.Info(name).Shape;
        if (shape.Length != 4 || shape[1] != channels)
            throw new InvalidDataException($"{inputs.Path}: '{name}' is [{string.Join(", ", shape)}]; the config wants [B, {channels}, height, width].");
        return true;
    }
}
