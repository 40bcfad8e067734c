using System.Text.Json;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Flux;

/// <summary>
/// The diffusers layout of the FLUX transformer (<c>transformer/</c>: shards + <c>*.safetensors.index.json</c>), renamed
/// to the reference layout while loading. Fused reference tensors (qkv, linear1) are filled slice by slice from their
/// diffusers parts, and <c>norm_out.linear</c>'s (scale, shift) becomes the reference's (shift, scale). Shards are
/// mapped one at a time and each tensor is copied straight into its parameter, so host memory stays near the model's
/// own size plus one shard.
/// </summary>
public static class DiffusersLayout
{
    /// <summary>A piece of a diffusers tensor: rows [SourceRow, SourceRow + Rows) go to rows [TargetRow, …) of Target.</summary>
    public sealed record Piece(string Target, long TargetRow, long SourceRow, long Rows);

    /// <summary>Where diffusers pieces go in the reference layout, for every key of a config.</summary>
    public static Dictionary<string, List<Piece>> Map(FluxParams p)
    {
        long h = p.HiddenSize, mlp = p.MlpHidden;
        var map = new Dictionary<string, List<Piece>>(StringComparer.Ordinal);
        void Add(string diffusers, string reference, long targetRow = 0, long sourceRow = 0, long rows = -1, bool bias = true)
        {
            foreach (var suffix in bias ? new[] { "weight", "bias" } : ["weight"])
            {
                if (!map.TryGetValue($"{diffusers}.{suffix}", out var list)) map[$"{diffusers}.{suffix}"] = list = [];
                list.Add(new Piece($"{reference}.{suffix}", targetRow, sourceRow, rows));
            }
        }
        void Scale(string diffusers, string reference) => map[diffusers + ".weight"] = [new Piece(reference + ".scale", 0, 0, -1)];

        Add("x_embedder", "img_in");
        Add("time_text_embed.timestep_embedder.linear_1", "time_in.in_layer");
        Add("time_text_embed.timestep_embedder.linear_2", "time_in.out_layer");
        if (p.GuidanceEmbed)
        {
            Add("time_text_embed.guidance_embedder.linear_1", "guidance_in.in_layer");
            Add("time_text_embed.guidance_embedder.linear_2", "guidance_in.out_layer");
        }
        Add("time_text_embed.text_embedder.linear_1", "vector_in.in_layer");
        Add("time_text_embed.text_embedder.linear_2", "vector_in.out_layer");
        Add("context_embedder", "txt_in");
        for (var i = 0; i < p.Depth; i++)
        {
            var d = $"transformer_blocks.{i}";
            var r = $"double_blocks.{i}";
            Add($"{d}.norm1.linear", $"{r}.img_mod.lin");
            Add($"{d}.norm1_context.linear", $"{r}.txt_mod.lin");
            string[] img = ["to_q", "to_k", "to_v"], txt = ["add_q_proj", "add_k_proj", "add_v_proj"];
            for (var k = 0; k < 3; k++)
            {
                Add($"{d}.attn.{img[k]}", $"{r}.img_attn.qkv", k * h, 0, h, p.QkvBias);
                Add($"{d}.attn.{txt[k]}", $"{r}.txt_attn.qkv", k * h, 0, h, p.QkvBias);
            }
            Scale($"{d}.attn.norm_q", $"{r}.img_attn.norm.query_norm");
            Scale($"{d}.attn.norm_k", $"{r}.img_attn.norm.key_norm");
            Scale($"{d}.attn.norm_added_q", $"{r}.txt_attn.norm.query_norm");
            Scale($"{d}.attn.norm_added_k", $"{r}.txt_attn.norm.key_norm");
            Add($"{d}.attn.to_out.0", $"{r}.img_attn.proj");
            Add($"{d}.attn.to_add_out", $"{r}.txt_attn.proj");
            Add($"{d}.ff.net.0.proj", $"{r}.img_mlp.0");
            Add($"{d}.ff.net.2", $"{r}.img_mlp.2");
            Add($"{d}.ff_context.net.0.proj", $"{r}.txt_mlp.0");
            Add($"{d}.ff_context.net.2", $"{r}.txt_mlp.2");
        }
        for (var i = 0; i < p.DepthSingleBlocks; i++)
        {
            var d = $"single_transformer_blocks.{i}";
            var r = $"single_blocks.{i}";
            Add($"{d}.attn.to_q", $"{r}.linear1", 0, 0, h);
            Add($"{d}.attn.to_k", $"{r}.linear1", h, 0, h);
            Add($"{d}.attn.to_v", $"{r}.linear1", 2 * h, 0, h);
            Add($"{d}.proj_mlp", $"{r}.linear1", 3 * h, 0, mlp);
            Scale($"{d}.attn.norm_q", $"{r}.norm.query_norm");
            Scale($"{d}.attn.norm_k", $"{r}.norm.key_norm");
            Add($"{d}.proj_out", $"{r}.linear2");
            Add($"{d}.norm.linear", $"{r}.modulation.lin");
        }
        // AdaLayerNormContinuous chunks (scale, shift); the reference's final layer chunks (shift, scale).
        foreach (var suffix in new[] { "weight", "bias" })
            map[$"norm_out.linear.{suffix}"] =
            [
                new Piece($"final_layer.adaLN_modulation.1.{suffix}", h, 0, h),
                new Piece($"final_layer.adaLN_modulation.1.{suffix}", 0, h, h),
            ];
        Add("proj_out", "final_layer.linear");
        return map;
    }

    /// <summary>
    /// The folder a transformer path stands for: the folder itself, or its <c>transformer/</c> when it is a model
    /// folder; for a file (a shard index, say), the folder holding it.
    /// </summary>
    public static string Folder(string path)
    {
        var folder = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        var inner = Path.Combine(folder, "transformer");
        return Directory.Exists(inner) ? inner : folder;
    }

    /// <summary>Whether checkpoint keys are in the diffusers layout (rather than the reference's).</summary>
    public static bool IsDiffusersKeys(IEnumerable<string> keys) =>
        keys.Any(k => k.StartsWith("transformer_blocks.", StringComparison.Ordinal) || k.StartsWith("single_transformer_blocks.", StringComparison.Ordinal)
            || k.StartsWith("x_embedder.", StringComparison.Ordinal));

    /// <summary>
    /// Loads diffusers-layout files (see <see cref="CheckpointFolder.Files"/>) into the model, shard by shard,
    /// refusing unknown or missing keys.
    /// </summary>
    public static void Load(FluxModel model, Dictionary<string, List<string>> shards, string source)
    {
        var map = Map(model.Params);
        var own = model.state_dict();
        var filled = own.Keys.ToDictionary(k => k, _ => 0L, StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var (file, keys) in shards)
        {
            using var reader = SafeTensorsFile.Open(file);
            foreach (var key in keys)
            {
                if (!map.TryGetValue(key, out var pieces)) throw new InvalidDataException($"{file}: '{key}' is not part of this transformer.");
                foreach (var piece in pieces)
                {
                    // The scope frees the narrowed views with the value at once; left to the GC they would keep
                    // every converted tensor alive until the end of the load.
                    using var scope = NewDisposeScope();
                    var target = own[piece.Target];
                    var value = reader.Read(key, target.dtype);
                    var rows = piece.Rows < 0 ? value.shape[0] : piece.Rows;
                    if (value.shape.Length != target.shape.Length || !value.shape.Skip(1).SequenceEqual(target.shape.Skip(1)) || piece.SourceRow + rows > value.shape[0] || piece.TargetRow + rows > target.shape[0])
                        throw new InvalidDataException($"{file}: '{key}' [{string.Join(", ", value.shape)}] does not fit '{piece.Target}' [{string.Join(", ", target.shape)}].");
                    target.narrow(0, piece.TargetRow, rows).copy_(value.narrow(0, piece.SourceRow, rows));
                    filled[piece.Target] += rows;
                }
            }
        }
        var missing = filled.Where(kv => kv.Value != own[kv.Key].shape[0]).Select(kv => kv.Key).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"{source} does not fill: {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? ", …" : "")}.");
    }

    /// <summary>
    /// Writes the model in the diffusers layout, in shards of about <paramref name="shardBytes"/>, with the index and,
    /// where diffusers can express the dimensions, its <c>config.json</c>.
    /// </summary>
    public static void Save(FluxModel model, string folder, long shardBytes, ScalarType dtype)
    {
        Directory.CreateDirectory(folder);
        var own = model.state_dict();
        var entries = new List<(string Key, Tensor Value)>();
        foreach (var (key, pieces) in Map(model.Params).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var parts = pieces.Select(p =>
            {
                var target = own[p.Target];
                var rows = p.Rows < 0 ? target.shape[0] : p.Rows;
                return (p.SourceRow, Value: target.narrow(0, p.TargetRow, rows));
            }).OrderBy(x => x.SourceRow).Select(x => x.Value).ToList();
            entries.Add((key, cat(parts, 0).to_type(dtype)));
        }
        var totalSize = entries.Sum(e => e.Value.numel() * e.Value.element_size());
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var shards = new List<List<(string Key, Tensor Value)>> { new() };
        long size = 0;
        foreach (var e in entries)
        {
            var bytes = e.Value.numel() * e.Value.element_size();
            if (size > 0 && size + bytes > shardBytes) { shards.Add([]); size = 0; }
            shards[^1].Add(e);
            size += bytes;
        }
        for (var i = 0; i < shards.Count; i++)
        {
            var name = $"diffusion_pytorch_model-{i + 1:00000}-of-{shards.Count:00000}.safetensors";
            SafeTensorsFile.Save(Path.Combine(folder, name), shards[i].ToDictionary(e => e.Key, e => e.Value));
            foreach (var e in shards[i]) { weightMap[e.Key] = name; e.Value.Dispose(); }
        }
        if (model.Params.ToDiffusersJson() is { } config) File.WriteAllText(Path.Combine(folder, "config.json"), config);
        File.WriteAllText(Path.Combine(folder, "diffusion_pytorch_model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = totalSize }, weight_map = weightMap }, new JsonSerializerOptions { WriteIndented = true }));
    }
}
