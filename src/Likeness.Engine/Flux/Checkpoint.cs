using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Likeness.Engine.Flux;

/// <summary>
/// Gradient checkpointing for one transformer block: the forward keeps only the block's inputs, not its activations;
/// the backward runs the block again with gradients on and back-propagates through that recomputation, which also
/// accumulates the gradients of the parameters used inside (the LoRA's). Costs one more forward per block, saves
/// all but the inputs of every block — the difference between 57 blocks' activations and one block's.
/// </summary>
internal sealed class Checkpoint : MultiTensorFunction<Checkpoint>
{
    public override string Name => nameof(Checkpoint);

    /// <summary>
    /// <paramref name="block"/>(inputs) → outputs, checkpointed. The blocks are deterministic (no dropout), so the
    /// recomputation equals the first run.
    /// </summary>
    public static Tensor[] Run(Func<Tensor[], Tensor[]> block, params Tensor[] inputs)
    {
        // The autograd node exists only if an input requires grad; the block's inputs may not (the first block's come
        // from layers the LoRA leaves alone) while its parameters do. A one-element token input keeps the node.
        using var token = ones([1], ScalarType.Float32, inputs[0].device).requires_grad_();
        object[] vars = [.. inputs, token, block];
        return [.. apply(vars)];
    }

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var inputs = vars.OfType<Tensor>().ToArray()[..^1];
        var block = (Func<Tensor[], Tensor[]>)vars[^1];
        ctx.save_for_backward([.. inputs]);
        ctx.save_data("block", block);
        ctx.save_data("needsGrad", inputs.Select(t => t.requires_grad).ToArray());
        return [.. block(inputs)];
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var block = (Func<Tensor[], Tensor[]>)ctx.get_data("block");
        var needsGrad = (bool[])ctx.get_data("needsGrad");
        // The recomputation's tensors die here: on a GPU this runs on the autograd engine's thread, outside any scope
        // of the training loop. Only the gradients handed back to the engine leave the scope.
        using var scope = NewDisposeScope();
        var inputs = ctx.get_saved_variables().Select((t, i) => t.detach().requires_grad_(needsGrad[i])).ToArray();
        using (enable_grad())
        {
            var outputs = block(inputs);
            autograd.backward(outputs, gradOutputs);
        }
        // One gradient per forward argument: each input's, none for the token and the block.
        // (The engine takes null for "no gradient"; TorchSharp's signature does not say so.)
        var grads = inputs.Select((t, i) => needsGrad[i] ? t.grad?.MoveToOuterDisposeScope() : null).Append(null).Append(null);
        return grads.ToList()!;
    }
}
