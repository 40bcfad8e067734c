using Likeness.Engine.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Flux;

/// <summary>
/// The FLUX.1 transformer as the reference <c>Flux</c> module. Field names are the checkpoint's keys, so a real
/// checkpoint loads with no renaming table.
/// </summary>
public sealed class FluxModel : nn.Module
{
    public const string CheckpointPrefix = "model.diffusion_model.";

    public FluxParams Params { get; }

    private readonly LoraLinear img_in;
    private readonly MlpEmbedder time_in;
    private readonly MlpEmbedder vector_in;
    private readonly MlpEmbedder? guidance_in;
    private readonly LoraLinear txt_in;
    public readonly ModuleList<DoubleStreamBlock> double_blocks;
    public readonly ModuleList<SingleStreamBlock> single_blocks;
    private readonly LastLayer final_layer;

    /// <summary>Builds the network on <paramref name="device"/> in <paramref name="dtype"/>, block by block.</summary>
    public FluxModel(FluxParams p, Device? device = null, ScalarType dtype = ScalarType.Float32) : base("Flux")
    {
        p.Validate();
        Params = p;
        img_in = new LoraLinear(p.InChannels, p.HiddenSize, device: device).In(dtype);
        time_in = new MlpEmbedder(256, p.HiddenSize, device).In(dtype);
        vector_in = new MlpEmbedder(p.VecInDim, p.HiddenSize, device).In(dtype);
        if (p.GuidanceEmbed) guidance_in = new MlpEmbedder(256, p.HiddenSize, device).In(dtype);
        txt_in = new LoraLinear(p.ContextInDim, p.HiddenSize, device: device).In(dtype);
        double_blocks = new ModuleList<DoubleStreamBlock>(Enumerable.Range(0, p.Depth)
            .Select(_ => new DoubleStreamBlock(p.HiddenSize, p.NumHeads, p.MlpRatio, p.QkvBias, device).In(dtype)).ToArray());
        single_blocks = new ModuleList<SingleStreamBlock>(Enumerable.Range(0, p.DepthSingleBlocks)
            .Select(_ => new SingleStreamBlock(p.HiddenSize, p.NumHeads, p.MlpRatio, device).In(dtype)).ToArray());
        final_layer = new LastLayer(p.HiddenSize, p.OutChannels, device).In(dtype);
        RegisterComponents();
    }

    /// <summary>
    /// While gradients are on, keep only each block's inputs and recompute the block in the backward pass
    /// (<see cref="Checkpoint"/>): one more forward per step for far less activation memory.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>The weights' dtype; inputs are cast to it, and the output comes back in it.</summary>
    public ScalarType Dtype => img_in.weight.dtype;

    /// <summary>
    /// img [B, L, in], img_ids [B, L, 3], txt [B, T, ctx], txt_ids [B, T, 3], timesteps [B], y [B, vec],
    /// guidance [B] (only with guidance_embed) → [B, L, out].
    /// </summary>
    public Tensor forward(Tensor img, Tensor imgIds, Tensor txt, Tensor txtIds, Tensor timesteps, Tensor y, Tensor? guidance)
    {
        using var scope = NewDisposeScope();
        var dtype = Dtype;
        var x = img_in.forward(img.to_type(dtype));
        var vec = time_in.forward(FluxMath.TimestepEmbedding(timesteps).to_type(x.dtype));
        if (guidance_in is not null)
        {
            if (guidance is null) throw new ArgumentException("This model embeds guidance: pass a guidance tensor.");
            vec = vec.add(guidance_in.forward(FluxMath.TimestepEmbedding(guidance).to_type(x.dtype)), One);
        }
        vec = vec.add(vector_in.forward(y.to_type(dtype)), One);
        var t = txt_in.forward(txt.to_type(dtype));

        var pe = FluxMath.RopeAngles(cat([txtIds, imgIds], 1), Params.AxesDim, Params.Theta);
        var checkpoint = GradientCheckpointing && is_grad_enabled();
        foreach (var block in double_blocks)
        {
            if (!checkpoint) (x, t) = block.forward(x, t, vec, pe);
            else
            {
                var outputs = Checkpoint.Run(i => { var (a, b) = block.forward(i[0], i[1], i[2], i[3]); return [a, b]; }, x, t, vec, pe);
                (x, t) = (outputs[0], outputs[1]);
            }
        }
        var txtLen = (int)t.shape[1];
        var joint = cat([t, x], 1);
        foreach (var block in single_blocks)
            joint = checkpoint ? Checkpoint.Run(i => [block.forward(i[0], i[1], i[2])], joint, vec, pe)[0] : block.forward(joint, vec, pe);
        var imgPart = joint[.., txtLen..];
        return final_layer.forward(imgPart, vec).MoveToOuterDisposeScope();
    }

    /// <summary>Every adapter-capable linear layer with its checkpoint path (e.g. <c>double_blocks.0.img_attn.qkv</c>).</summary>
    public IEnumerable<(string Path, LoraLinear Layer)> Linears() =>
        named_modules().Where(m => m.module is LoraLinear).Select(m => (m.name, (LoraLinear)m.module));

    /// <summary>Builds a model with weights drawn deterministically from <paramref name="seed"/>.</summary>
    public static FluxModel CreateInitialized(FluxParams p, long seed, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var model = new FluxModel(p, device);
        model.InitializeWeights(seed);
        return model.In(dtype);
    }

    /// <summary>Linear weights ~ N(0, 0.02²) (modulation and output layers smaller), biases zero, norm scales one.</summary>
    public void InitializeWeights(long seed) => SeededWeights.Fill(this, seed, (name, _) =>
        name.EndsWith(".scale", StringComparison.Ordinal) ? Init.One
        : name.EndsWith(".bias", StringComparison.Ordinal) ? Init.Zero
        : Init.Normal(name.StartsWith("final_layer", StringComparison.Ordinal) || name.Contains("mod") ? 0.01 : 0.02));

    /// <summary>
    /// Loads the transformer from any published form: one safetensors file, a folder of shards (or its
    /// <c>*.index.json</c>, or a model folder with <c>transformer/</c> inside), with reference keys (optionally under
    /// <c>model.diffusion_model.</c>) or diffusers keys (renamed on load). F16/BF16 are converted to the model's dtype
    /// tensor by tensor from the mapped files. Missing or unexpected keys and wrong shapes are refused with the names.
    /// </summary>
    public void LoadWeights(string path)
    {
        var files = CheckpointFolder.Files(Directory.Exists(path) ? DiffusersLayout.Folder(path) : path);
        if (DiffusersLayout.IsDiffusersKeys(files.Values.SelectMany(k => k))) DiffusersLayout.Load(this, files, path);
        else LoadReference(files, path);
    }

    private void LoadReference(Dictionary<string, List<string>> files, string source)
    {
        var all = files.Values.SelectMany(k => k).ToList();
        var prefix = all.Any(k => k.StartsWith(CheckpointPrefix, StringComparison.Ordinal)) ? CheckpointPrefix : "";
        var own = state_dict();
        var fileKeys = all.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..]).ToHashSet();
        var missing = own.Keys.Where(k => !fileKeys.Contains(k)).ToList();
        var unexpected = fileKeys.Where(k => !own.ContainsKey(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException(
                $"{source} does not match the transformer: missing [{string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? ", …" : "")}], " +
                $"unexpected [{string.Join(", ", unexpected.Take(10))}{(unexpected.Count > 10 ? ", …" : "")}].");
        using var noGrad = no_grad();
        foreach (var (file, keys) in files)
        {
            using var reader = SafeTensorsFile.Open(file);
            foreach (var fileKey in keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)))
            {
                var key = fileKey[prefix.Length..];
                var target = own[key];
                var info = reader.Info(fileKey);
                if (!info.Shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"{file}: '{key}' has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", target.shape)}].");
                using var value = reader.Read(fileKey, target.dtype);
                target.copy_(value);
            }
        }
    }
}
