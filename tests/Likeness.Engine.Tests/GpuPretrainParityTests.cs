using System.Security.Cryptography;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Sampling;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>
/// The shipped flux-tiny was pretrained further on a GPU by the PyTorch port in tools/gpu-pretrain, which must compute
/// what the engine computes, or what it learned means something else here. Data/gpu-pretrain-parity holds fixed
/// inputs and the port's outputs (in float64, from the shipped weights; made by tools/gpu-pretrain/parity.py): the
/// autoencoder's latent, the T5 sequence, CLIP's pooled vector and the transformer's velocity, which the engine must
/// reproduce in float32 to about 1e-5 of each output's scale.
/// </summary>
public sealed class GpuPretrainParityTests
{
    private static readonly string Reference = Path.Combine(AppContext.BaseDirectory, "Data", "gpu-pretrain-parity", "reference.safetensors");

    [Fact]
    public void The_engine_computes_what_the_pytorch_port_computes_with_the_shipped_weights()
    {
        using var reader = SafeTensorsFile.Open(Reference);
        var shipped = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(FluxPreset.TinyWeights, "transformer.safetensors"))));
        Assert.True(reader.Metadata["transformer_sha256"] == shipped,
            "The fixture was made from other weights than the shipped ones: rerun tools/gpu-pretrain/parity.py (see its header).");

        using var models = FluxModels.Load(FluxPreset.Tiny, null);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var image = reader.Read("image");
        var noise = reader.Read("noise");
        var t = reader.Read("t");
        var guidance = reader.Read("guidance");

        var latent = models.Autoencoder.Encode(image);
        AssertClose("latent", latent, reader.Read("latent"));
        var (txt, vec) = models.Text.Encode([reader.Metadata["prompt_0"], reader.Metadata["prompt_1"]]);
        AssertClose("txt", txt, reader.Read("txt"));
        AssertClose("vec", vec, reader.Read("vec"));

        var xt = latent.add(t.view(-1, 1, 1, 1).mul(noise - latent));
        var (h, w) = (latent.shape[2], latent.shape[3]);
        var pred = models.Transformer.forward(FluxSampling.Pack(xt), FluxSampling.ImageIds(2, h, w), txt, FluxSampling.TextIds(2, txt.shape[1]),
            t, vec, guidance);
        AssertClose("pred", pred, reader.Read("pred"));
    }

    private static void AssertClose(string name, Tensor actual, Tensor expected)
    {
        using var expected64 = expected.to_type(ScalarType.Float64);
        var error = Florence2ParityTests.RelativeError(actual, expected64);
        Assert.True(error < 1e-5, $"{name}: relative error {error:G3}");
    }
}
