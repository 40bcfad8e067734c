using System.Text.Json;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Text;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests.Text;

/// <summary>
/// The text encoders against their independent double-precision statements (<see cref="NaiveT5"/>,
/// <see cref="NaiveClip"/>). Weights come from a seeded generator with the Hugging Face keys and shapes written out
/// here, go through a sharded Hugging Face style folder and <see cref="CheckpointFolder.Load"/> into the module, and
/// the naive statement reads the generated values directly — so a wrong key, shape, layout or formula all show up
/// as disagreement beyond 1e-5.
/// </summary>
public sealed class EncoderGoldenTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    private static readonly T5Params T5Config = new(VocabSize: 40, DModel: 32, NumHeads: 4, DKv: 8, DFf: 48, NumLayers: 3);
    private static readonly ClipTextParams ClipConfig = new(VocabSize: 50, Hidden: 32, Layers: 2, Heads: 4, Mlp: 64, MaxPositions: 16);

    /// <summary>
    /// Three 40-token T5 sequences (end token 1, padding 0): offsets up to 39 reach the logarithmic buckets
    /// (max_exact is 8) in both directions, and the padded ones check that padding is attended, not masked.
    /// </summary>
    private static readonly int[][] T5Batch = [T5Sequence(39, 1), T5Sequence(25, 2), T5Sequence(6, 3)];

    private const int ClipStart = 48;
    private const int ClipEnd = 49; // the largest id, as <|endoftext|> is in CLIP's vocabulary

    /// <summary>
    /// CLIP sequences of the full 16 positions: padded with the end token (as CLIP ViT-L's tokenizer pads, so the
    /// first end token must be the one pooled), padded with zeros, and with the end token last.
    /// </summary>
    private static readonly int[][] ClipFullBatch =
    [
        [ClipStart, 7, 21, 3, 40, 12, ClipEnd, ClipEnd, ClipEnd, ClipEnd, ClipEnd, ClipEnd, ClipEnd, ClipEnd, ClipEnd, ClipEnd],
        [ClipStart, 30, 2, 2, 17, 45, 9, 33, 1, 26, 8, ClipEnd, 0, 0, 0, 0],
        [ClipStart, 11, 47, 5, 19, 36, 28, 14, 6, 41, 23, 10, 38, 4, 25, ClipEnd],
    ];

    /// <summary>Sequences shorter than the position table (only its first rows are used).</summary>
    private static readonly int[][] ClipShortBatch =
    [
        [ClipStart, 13, 29, 44, ClipEnd, ClipEnd, ClipEnd, ClipEnd, ClipEnd],
        [ClipStart, 3, 16, 35, 22, 8, 47, ClipEnd, 0],
    ];

    [Fact]
    public void T5_encoder_loaded_from_a_sharded_folder_matches_the_naive_statement_within_1e_5()
    {
        var weights = T5Weights(seed: 11);
        var (maxDiff, maxGolden) = T5MaxDiff(weights, weights);
        output.WriteLine($"T5: max |module − naive| = {maxDiff:E3}, max |naive| = {maxGolden:F3}");
        Assert.True(maxDiff <= Tolerance, $"max |diff| = {maxDiff}");
        Assert.True(maxGolden > 0.5, "the golden output is not trivially small");
    }

    [Fact]
    public void Clip_text_model_loaded_from_a_sharded_folder_matches_the_naive_statement_within_1e_5()
    {
        var weights = ClipWeights(seed: 12);
        foreach (var batch in new[] { ClipFullBatch, ClipShortBatch })
        {
            var (maxDiff, maxGolden) = ClipMaxDiff(weights, weights, batch);
            output.WriteLine($"CLIP, length {batch[0].Length}: max |module − naive| = {maxDiff:E3}, max |naive| = {maxGolden:F3}");
            Assert.True(maxDiff <= Tolerance, $"length {batch[0].Length}: max |diff| = {maxDiff}");
            Assert.True(maxGolden > 0.5, "the golden output is not trivially small");
        }
    }

    [Theory]
    [InlineData("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 26 * 4 + 3)] // bucket 26: keys 16–22 after the query, logarithmic only
    [InlineData("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 11 * 4 + 0)] // bucket 11: keys 23–31 before the query
    [InlineData("encoder.block.2.layer.1.DenseReluDense.wo.weight", 5 * 48 + 17)]
    [InlineData("encoder.block.1.layer.0.layer_norm.weight", 9)]
    [InlineData("encoder.final_layer_norm.weight", 30)]
    public void A_perturbed_t5_weight_in_the_checkpoint_breaks_the_golden_agreement(string key, int index)
    {
        var golden = T5Weights(seed: 11);
        var (maxDiff, _) = T5MaxDiff(golden, Perturbed(golden, key, index));
        output.WriteLine($"T5, {key}[{index}] + 1/32: max |diff| = {maxDiff:E3}");
        Assert.True(maxDiff > Tolerance, $"a perturbed {key} went unnoticed: max |diff| = {maxDiff}");
    }

    [Theory]
    [InlineData("text_model.embeddings.position_embedding.weight", 11 * 32 + 4)] // position 11: the second sequence's end token
    [InlineData("text_model.encoder.layers.0.self_attn.k_proj.weight", 7 * 32 + 20)]
    [InlineData("text_model.encoder.layers.1.mlp.fc1.bias", 40)]
    [InlineData("text_model.final_layer_norm.bias", 2)]
    public void A_perturbed_clip_weight_in_the_checkpoint_breaks_the_golden_agreement(string key, int index)
    {
        var golden = ClipWeights(seed: 12);
        var (maxDiff, _) = ClipMaxDiff(golden, Perturbed(golden, key, index), ClipFullBatch);
        output.WriteLine($"CLIP, {key}[{index}] + 1/32: max |diff| = {maxDiff:E3}");
        Assert.True(maxDiff > Tolerance, $"a perturbed {key} went unnoticed: max |diff| = {maxDiff}");
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(-1, 1)]
    [InlineData(1, 17)]
    [InlineData(-7, 7)]
    [InlineData(-8, 8)]   // max_exact: the first logarithmic bucket
    [InlineData(-15, 9)]  // 8 + ⌊8·log(15/8)/log 16⌋ = 8 + ⌊1.81⌋
    [InlineData(-16, 10)] // 8 + 8·log 2/log 16 = 8 + 2 exactly
    [InlineData(31, 27)]  // 16 + 8 + ⌊3.91⌋
    [InlineData(32, 28)]
    [InlineData(-63, 13)]
    [InlineData(-64, 14)]
    [InlineData(127, 31)]
    [InlineData(-128, 15)] // max_distance and beyond: the last bucket of the half
    [InlineData(1000, 31)]
    public void The_naive_t5_bucket_follows_the_definition(int relative, int bucket) =>
        Assert.Equal(bucket, NaiveT5.Bucket(relative, 32, 128));

    [Fact]
    public void The_module_t5_buckets_match_the_naive_bucket_out_to_300()
    {
        var offsets = Enumerable.Range(-300, 601).ToArray();
        using var relative = tensor(offsets.Select(o => (long)o).ToArray());
        using var buckets = T5Attention.RelativeBucket(relative, 32, 128);
        var actual = buckets.data<long>().ToArray();
        for (var i = 0; i < offsets.Length; i++)
            Assert.True(NaiveT5.Bucket(offsets[i], 32, 128) == actual[i], $"offset {offsets[i]}: module {actual[i]}, naive {NaiveT5.Bucket(offsets[i], 32, 128)}");
    }

    /// <summary>Loads <paramref name="written"/> into a T5 encoder through a sharded folder and compares it with the naive forward over <paramref name="golden"/>.</summary>
    private static (double MaxDiff, double MaxGolden) T5MaxDiff(Dictionary<string, NaiveTensor> golden, Dictionary<string, NaiveTensor> written)
    {
        using var embedTokens = ToTensor(written["shared.weight"], ScalarType.BFloat16); // Hugging Face's tied copy of shared
        var folder = WriteShardedCheckpoint(written, new() { ["encoder.embed_tokens.weight"] = embedTokens });
        try
        {
            using var encoder = new T5Encoder(T5Config);
            CheckpointFolder.Load(encoder, folder);
            var actual = Run(encoder, T5Batch);
            var naive = new NaiveT5(T5Config, golden);
            var expected = T5Batch.Select(ids => naive.Forward(ids)).ToArray();
            return Compare(expected, actual);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    /// <summary>Loads <paramref name="written"/> into a CLIP text model through a sharded folder and compares its pooled output with the naive one over <paramref name="golden"/>.</summary>
    private static (double MaxDiff, double MaxGolden) ClipMaxDiff(Dictionary<string, NaiveTensor> golden, Dictionary<string, NaiveTensor> written, int[][] batch)
    {
        using var positionIds = arange(ClipConfig.MaxPositions, dtype: ScalarType.Int64).unsqueeze(0); // a buffer in Hugging Face checkpoints
        var folder = WriteShardedCheckpoint(written, new() { ["text_model.embeddings.position_ids"] = positionIds });
        try
        {
            using var clip = new ClipTextModel(ClipConfig);
            CheckpointFolder.Load(clip, folder);
            var actual = Run(clip, batch);
            var naive = new NaiveClip(ClipConfig, golden);
            var expected = batch.Select(ids => new[] { naive.Forward(ids).Pooled }).ToArray();
            return Compare(expected, actual);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    /// <summary>Runs a module on a batch of equal-length id sequences and returns its fp32 output per sequence, flattened.</summary>
    private static float[][] Run(nn.Module<Tensor, Tensor> module, int[][] batch)
    {
        using var noGrad = no_grad();
        using var ids = tensor(batch.SelectMany(r => r.Select(id => (long)id)).ToArray(), [batch.Length, batch[0].Length]);
        using var result = module.forward(ids);
        Assert.Equal(ScalarType.Float32, result.dtype);
        var flat = result.contiguous().data<float>().ToArray();
        return flat.Chunk(flat.Length / batch.Length).ToArray();
    }

    /// <summary>The largest |expected − actual| over the batch, and the largest |expected| (to show the values are not trivial).</summary>
    private static (double MaxDiff, double MaxGolden) Compare(double[][][] expected, float[][] actual)
    {
        var (maxDiff, maxGolden) = (0.0, 0.0);
        for (var b = 0; b < expected.Length; b++)
        {
            var flat = expected[b].SelectMany(r => r).ToArray();
            Assert.Equal(flat.Length, actual[b].Length);
            for (var i = 0; i < flat.Length; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(flat[i] - actual[b][i]));
                maxGolden = Math.Max(maxGolden, Math.Abs(flat[i]));
            }
        }
        return (maxDiff, maxGolden);
    }

    /// <summary>
    /// A T5 v1.1 encoder's weights under the Hugging Face keys, O(1) activations: unit-variance embeddings and bias
    /// table, linear weights ~ N(0, 1/fan_in) (q and k smaller, as T5 has no 1/√d), norm weights around 1.
    /// </summary>
    private static Dictionary<string, NaiveTensor> T5Weights(int seed)
    {
        var (p, rng) = (T5Config, new Random(seed));
        var w = new Dictionary<string, NaiveTensor>(StringComparer.Ordinal);
        var inner = p.NumHeads * p.DKv;
        void Add(string key, double mean, double std, params int[] shape) => w[key] = Normal(rng, mean, std, shape);
        Add("shared.weight", 0, 1, p.VocabSize, p.DModel);
        Add("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 0, 1, p.RelativeBuckets, p.NumHeads);
        for (var i = 0; i < p.NumLayers; i++)
        {
            var prefix = $"encoder.block.{i}.layer.";
            Add(prefix + "0.layer_norm.weight", 1, 0.2, p.DModel);
            Add(prefix + "0.SelfAttention.q.weight", 0, 0.7 / Math.Sqrt(p.DModel), inner, p.DModel);
            Add(prefix + "0.SelfAttention.k.weight", 0, 0.7 / Math.Sqrt(p.DModel), inner, p.DModel);
            Add(prefix + "0.SelfAttention.v.weight", 0, 1 / Math.Sqrt(p.DModel), inner, p.DModel);
            Add(prefix + "0.SelfAttention.o.weight", 0, 1 / Math.Sqrt(inner), p.DModel, inner);
            Add(prefix + "1.layer_norm.weight", 1, 0.2, p.DModel);
            Add(prefix + "1.DenseReluDense.wi_0.weight", 0, 1 / Math.Sqrt(p.DModel), p.DFf, p.DModel);
            Add(prefix + "1.DenseReluDense.wi_1.weight", 0, 1 / Math.Sqrt(p.DModel), p.DFf, p.DModel);
            Add(prefix + "1.DenseReluDense.wo.weight", 0, 1 / Math.Sqrt(p.DFf), p.DModel, p.DFf);
        }
        Add("encoder.final_layer_norm.weight", 1, 0.2, p.DModel);
        return w;
    }

    /// <summary>A CLIP text model's weights under the Hugging Face keys: linear weights ~ N(0, 1/fan_in), non-zero biases, norms around 1.</summary>
    private static Dictionary<string, NaiveTensor> ClipWeights(int seed)
    {
        var (p, rng) = (ClipConfig, new Random(seed));
        var w = new Dictionary<string, NaiveTensor>(StringComparer.Ordinal);
        void Add(string key, double mean, double std, params int[] shape) => w[key] = Normal(rng, mean, std, shape);
        void Linear(string key, int outputs, int inputs)
        {
            Add(key + ".weight", 0, 1 / Math.Sqrt(inputs), outputs, inputs);
            Add(key + ".bias", 0, 0.1, outputs);
        }
        void Norm(string key)
        {
            Add(key + ".weight", 1, 0.2, p.Hidden);
            Add(key + ".bias", 0, 0.1, p.Hidden);
        }
        Add("text_model.embeddings.token_embedding.weight", 0, 1, p.VocabSize, p.Hidden);
        Add("text_model.embeddings.position_embedding.weight", 0, 0.5, p.MaxPositions, p.Hidden);
        for (var i = 0; i < p.Layers; i++)
        {
            var prefix = $"text_model.encoder.layers.{i}.";
            foreach (var projection in new[] { "q_proj", "k_proj", "v_proj", "out_proj" }) Linear(prefix + "self_attn." + projection, p.Hidden, p.Hidden);
            Norm(prefix + "layer_norm1");
            Linear(prefix + "mlp.fc1", p.Mlp, p.Hidden);
            Linear(prefix + "mlp.fc2", p.Hidden, p.Mlp);
            Norm(prefix + "layer_norm2");
        }
        Norm("text_model.final_layer_norm");
        return w;
    }

    /// <summary>
    /// Writes the weights as Hugging Face does for a sharded model: two shards (the first F32, the second BF16, which
    /// the values survive exactly since they are BF16-rounded) and <c>model.safetensors.index.json</c> with a
    /// <c>weight_map</c>; <paramref name="extras"/> (tied copies, buffers) go in the second shard.
    /// </summary>
    private static string WriteShardedCheckpoint(Dictionary<string, NaiveTensor> weights, Dictionary<string, Tensor> extras)
    {
        var dir = Directory.CreateTempSubdirectory("likeness-golden-").FullName;
        var keys = weights.Keys.Order(StringComparer.Ordinal).ToList();
        var shards = new[]
        {
            (Name: "model-00001-of-00002.safetensors", Keys: keys.Take(keys.Count / 2).ToList(), Dtype: ScalarType.Float32),
            (Name: "model-00002-of-00002.safetensors", Keys: keys.Skip(keys.Count / 2).ToList(), Dtype: ScalarType.BFloat16),
        };
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long totalSize = 0;
        foreach (var (name, shardKeys, dtype) in shards)
        {
            var tensors = shardKeys.ToDictionary(k => k, k => ToTensor(weights[k], dtype));
            if (name == shards[^1].Name) foreach (var (k, v) in extras) tensors[k] = v;
            SafeTensorsFile.Save(Path.Combine(dir, name), tensors);
            foreach (var (k, v) in tensors)
            {
                map[k] = name;
                totalSize += v.numel() * v.element_size();
                if (!extras.ContainsKey(k)) v.Dispose();
            }
        }
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = totalSize }, weight_map = map }));
        return dir;
    }

    /// <summary>A copy of the weights with <paramref name="key"/>[<paramref name="index"/>] raised by 1/32 (still BF16-exact).</summary>
    private static Dictionary<string, NaiveTensor> Perturbed(Dictionary<string, NaiveTensor> weights, string key, int index)
    {
        var copy = new Dictionary<string, NaiveTensor>(weights, StringComparer.Ordinal);
        var values = (double[])weights[key].Values.Clone();
        values[index] = Bf16(values[index] + 1.0 / 32);
        Assert.NotEqual(weights[key].Values[index], values[index]);
        copy[key] = weights[key] with { Values = values };
        return copy;
    }

    private static Tensor ToTensor(NaiveTensor t, ScalarType dtype)
    {
        using var f32 = tensor(t.Values.Select(v => (float)v).ToArray(), t.Shape.Select(d => (long)d).ToArray());
        return f32.to_type(dtype);
    }

    /// <summary>Seeded normal values (Box–Muller), rounded to BF16 so that every shard dtype holds them exactly.</summary>
    private static NaiveTensor Normal(Random rng, double mean, double std, params int[] shape)
    {
        var values = new double[shape.Aggregate(1, (a, b) => a * b)];
        for (var i = 0; i < values.Length; i++)
        {
            var gaussian = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            values[i] = Bf16(mean + std * gaussian);
        }
        return new NaiveTensor(values, shape);
    }

    /// <summary>The nearest BF16 value (round to nearest even on the upper 16 bits of the float).</summary>
    private static double Bf16(double value)
    {
        var bits = BitConverter.SingleToUInt32Bits((float)value);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000u);
    }

    /// <summary>A T5-tokenized sequence of 40: <paramref name="tokens"/> ids in 2…vocab-1, the end token 1, then padding 0.</summary>
    private static int[] T5Sequence(int tokens, int seed)
    {
        var rng = new Random(100 + seed);
        return Enumerable.Range(0, tokens).Select(_ => rng.Next(2, T5Config.VocabSize)).Append(1).Concat(Enumerable.Repeat(0, 39 - tokens)).ToArray();
    }
}
