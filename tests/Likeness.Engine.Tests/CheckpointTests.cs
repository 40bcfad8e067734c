using Likeness.Engine.Flux;
using Likeness.Engine.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>Gradient checkpointing changes memory, never results: the same loss and the same gradients.</summary>
public sealed class CheckpointTests
{
    [Fact]
    public void A_checkpointed_function_runs_again_in_the_backward_and_gives_the_same_gradients()
    {
        using var w = (randn(4, 4) * 0.5).requires_grad_();
        var calls = 0;
        Tensor[] Block(Tensor[] i) { calls++; return [tanh(i[0].matmul(w)) * i[1], i[0].sum()]; }
        using var x = randn(3, 4).requires_grad_();
        using var y = randn(3, 4); // no grad: gets none back

        var outputs = Checkpoint.Run(Block, x, y);
        Assert.Equal(1, calls);
        (outputs[0].pow(2).sum() + outputs[1] * 3).backward();
        Assert.Equal(2, calls);
        using var wGrad = w.grad!.clone();
        using var xGrad = x.grad!.clone();
        Assert.Null(y.grad);

        w.grad!.zero_();
        x.grad!.zero_();
        var direct = Block([x, y]);
        (direct[0].pow(2).sum() + direct[1] * 3).backward();
        Assert.True((w.grad! - wGrad).abs().max().item<float>() < 1e-6);
        Assert.True((x.grad! - xGrad).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void A_checkpointed_transformer_gives_the_lora_the_same_gradients()
    {
        using var model = FluxModel.CreateInitialized(FluxModelTests.Small with { Depth = 2, DepthSingleBlocks = 2 }, 71);
        var inputs = Inputs.Random(model.Params, 2, 6, 3, 72);
        foreach (var p in model.parameters()) p.requires_grad = false;
        using var lora = LoraAdapter.Create(model, 4, seed: 3);
        var trainable = lora.TrainableParameters();
        using (no_grad()) foreach (var p in trainable) p.add_(randn(p.shape) * 0.1);

        (float Loss, Tensor[] Grads) Step(bool checkpointing)
        {
            model.GradientCheckpointing = checkpointing;
            foreach (var p in trainable) p.grad?.zero_();
            using var output = model.forward(inputs.Img, inputs.ImgIds, inputs.Txt, inputs.TxtIds, inputs.T, inputs.Y, inputs.Guidance);
            using var loss = output.pow(2).mean();
            loss.backward();
            return (loss.item<float>(), trainable.Select(p => p.grad!.clone()).ToArray());
        }
        var (plainLoss, plain) = Step(false);
        var (checkpointedLoss, checkpointed) = Step(true);
        // MKL does not promise bit-equal results from one call to the next (its path may depend on threads and
        // alignment), so the loss is held to float rounding, as the gradients below are.
        Assert.Equal(plainLoss, checkpointedLoss, plainLoss * 1e-6);
        var scale = plain.Max(g => g.abs().max().item<float>());
        Assert.True(scale > 0, "the LoRA gets gradients");
        for (var i = 0; i < plain.Length; i++)
            Assert.True((plain[i] - checkpointed[i]).abs().max().item<float>() <= 1e-5 * scale, $"parameter {i}: scale {scale}");
    }

    [Fact]
    public void A_lora_trained_with_checkpointing_equals_one_trained_without()
    {
        using var models = FluxModels.Load(FluxPreset.Tiny, null);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = SamplingAndTrainingTests.Dataset(dir, 2);
        var trainer = new Training.LoraTrainer(models);
        Dictionary<string, Tensor> Train(bool checkpointing)
        {
            var path = Path.Combine(dir, $"{checkpointing}.safetensors");
            trainer.Train(new Training.LoraTrainingOptions(zip, path, Path.Combine(dir, $"work-{checkpointing}"), 5, 4, 9, GradientCheckpointing: checkpointing), null, default);
            using var reader = SafeTensors.SafeTensorsFile.Open(path);
            return reader.Keys.ToDictionary(k => k, k => reader.Read(k));
        }
        var plain = Train(false);
        var checkpointed = Train(true);
        Assert.False(models.Transformer.GradientCheckpointing, "switched off after training");
        Assert.Contains(plain.Values, t => t.abs().max().item<float>() > 0);
        foreach (var (key, value) in plain)
            Assert.True((value - checkpointed[key]).abs().max().item<float>() <= 1e-5, key);
    }
}
