using Likeness.Engine.Autoencoder;
using Likeness.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

public sealed class AutoencoderAndTextTests
{
    private static readonly AutoEncoderParams Small = new(64, 3, 32, 3, [1, 1, 2, 2], 1, 16, 0.3611, 0.1159);

    /// <summary>The reference AE keys for a config, written from the reference layout.</summary>
    private static SortedSet<string> ReferenceKeys(AutoEncoderParams p)
    {
        var keys = new SortedSet<string>(StringComparer.Ordinal);
        void Conv(string n) { keys.Add(n + ".weight"); keys.Add(n + ".bias"); }
        void Block(string n, bool shortcut)
        {
            Conv(n + ".norm1"); Conv(n + ".conv1"); Conv(n + ".norm2"); Conv(n + ".conv2");
            if (shortcut) Conv(n + ".nin_shortcut");
        }
        void Mid(string n)
        {
            Block(n + ".block_1", false); Block(n + ".block_2", false);
            foreach (var a in new[] { "norm", "q", "k", "v", "proj_out" }) Conv($"{n}.attn_1.{a}");
        }
        Conv("encoder.conv_in");
        var ch = p.Ch;
        for (var i = 0; i < p.ChMult.Length; i++)
        {
            var outCh = p.Ch * p.ChMult[i];
            for (var j = 0; j < p.NumResBlocks; j++) { Block($"encoder.down.{i}.block.{j}", ch != outCh); ch = outCh; }
            if (i != p.ChMult.Length - 1) Conv($"encoder.down.{i}.downsample.conv");
        }
        Mid("encoder.mid"); Conv("encoder.norm_out"); Conv("encoder.conv_out");
        Conv("decoder.conv_in"); Mid("decoder.mid");
        ch = p.Ch * p.ChMult[^1];
        for (var i = p.ChMult.Length - 1; i >= 0; i--)
        {
            var outCh = p.Ch * p.ChMult[i];
            for (var j = 0; j <= p.NumResBlocks; j++) { Block($"decoder.up.{i}.block.{j}", ch != outCh); ch = outCh; }
            if (i != 0) Conv($"decoder.up.{i}.upsample.conv");
        }
        Conv("decoder.norm_out"); Conv("decoder.conv_out");
        return keys;
    }

    [Fact]
    public void Autoencoder_keys_are_the_references_and_shapes_follow_stride_8()
    {
        using var ae = AutoEncoder.CreateInitialized(Small, 1);
        var actual = new SortedSet<string>(ae.state_dict().Keys, StringComparer.Ordinal);
        var expected = ReferenceKeys(Small);
        Assert.True(expected.SetEquals(actual), "missing: " + string.Join(", ", expected.Except(actual).Take(5)) + " unexpected: " + string.Join(", ", actual.Except(expected).Take(5)));
        using var x = rand(1, 3, 64, 48) * 2 - 1;
        using var noGrad = no_grad();
        using var z = ae.Encode(x);
        Assert.Equal([1L, 16, 8, 6], z.shape);
        using var y = ae.Decode(z);
        Assert.Equal([1L, 3, 64, 48], y.shape);
        using var ae2 = AutoEncoder.CreateInitialized(Small, 1);
        using var z2 = ae2.Encode(x);
        Assert.True(z.equal(z2).all().item<bool>());
    }

    [Fact]
    public void Encoder_output_has_twice_the_latent_channels_and_encode_keeps_the_scaled_mean()
    {
        using var ae = AutoEncoder.CreateInitialized(Small, 2);
        Assert.Equal([32L, 64, 3, 3], ae.state_dict()["encoder.conv_out.weight"].shape);
        Assert.Equal([64L, 16, 3, 3], ae.state_dict()["decoder.conv_in.weight"].shape);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 17)]
    [InlineData(-1, 1)]
    [InlineData(7, 23)]
    [InlineData(8, 24)]
    [InlineData(-8, 8)]
    [InlineData(20, 26)]
    [InlineData(200, 31)]
    [InlineData(-200, 15)]
    public void T5_relative_buckets_match_hand_computed_values(long relative, long bucket)
    {
        // 32 bidirectional buckets, max distance 128: 0–7 exact, 8–15 logarithmic; +16 for positive offsets.
        using var result = T5Attention.RelativeBucket(tensor(new[] { relative }), 32, 128);
        Assert.Equal(bucket, result.item<long>());
    }

    [Fact]
    public void Tokenizers_pad_terminate_and_truncate()
    {
        var t5 = new ByteT5Tokenizer().Encode("ab", 5);
        Assert.Equal([97 + 3, 98 + 3, 1, 0, 0], t5);
        var longT5 = new ByteT5Tokenizer().Encode("abcdefgh", 4);
        Assert.Equal([100L, 101, 102, 1], longT5);
        var clip = new ByteClipTokenizer().Encode("AB", 6);
        Assert.Equal([259, 97 + 3, 98 + 3, 260, 260, 260], clip);
    }

    [Fact]
    public void Text_conditioning_is_deterministic_shaped_and_prompt_dependent()
    {
        using var a = TextConditioner.CreateTiny(3, 32);
        using var b = TextConditioner.CreateTiny(3, 32);
        var (txtA, vecA) = a.Encode(["a photo of ZOKRA", "something else"]);
        var (txtB, vecB) = b.Encode(["a photo of ZOKRA", "something else"]);
        Assert.Equal([2L, 32, 128], txtA.shape);
        Assert.Equal([2L, 128], vecA.shape);
        Assert.True(txtA.equal(txtB).all().item<bool>());
        Assert.True(vecA.equal(vecB).all().item<bool>());
        Assert.False(vecA[0].allclose(vecA[1]));
        a.MoveTo(CPU); // what training does on a GPU once captions are cached (here CPU to CPU)
        var (txtC, vecC) = a.Encode(["a photo of ZOKRA", "something else"]);
        Assert.True(txtC.equal(txtA).all().item<bool>() && vecC.equal(vecA).all().item<bool>());
    }

    [Fact]
    public void Clip_is_causal_and_pools_at_the_end_token()
    {
        using var clip = new ClipTextModel(ClipTextParams.Tiny);
        using var noGrad = no_grad();
        var tokenizer = new ByteClipTokenizer();
        using var ids1 = tensor(tokenizer.Encode("cat", 77), [1, 77]);
        using var ids2 = tensor(tokenizer.Encode("cat", 77), [1, 77]);
        ids2[0, 70] = tensor(50L); // after the first end token: must not change the pooled state
        using var p1 = clip.forward(ids1);
        using var p2 = clip.forward(ids2);
        Assert.True((p1 - p2).abs().max().item<float>() < 1e-6);
        using var ids3 = tensor(tokenizer.Encode("dog", 77), [1, 77]);
        using var p3 = clip.forward(ids3);
        Assert.True((p1 - p3).abs().max().item<float>() > 1e-4);
    }

    [Fact]
    public void T5_keys_follow_the_hugging_face_layout()
    {
        using var t5 = new T5Encoder(T5Params.Tiny);
        var keys = t5.state_dict().Keys.ToHashSet();
        Assert.Contains("shared.weight", keys);
        Assert.Contains("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", keys);
        Assert.DoesNotContain("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight", keys);
        Assert.Contains("encoder.block.1.layer.1.DenseReluDense.wi_0.weight", keys);
        Assert.Contains("encoder.block.1.layer.1.layer_norm.weight", keys);
        Assert.Contains("encoder.final_layer_norm.weight", keys);
        using var clip = new ClipTextModel(ClipTextParams.Tiny);
        var clipKeys = clip.state_dict().Keys.ToHashSet();
        Assert.Contains("text_model.embeddings.token_embedding.weight", clipKeys);
        Assert.Contains("text_model.encoder.layers.1.self_attn.out_proj.bias", clipKeys);
        Assert.Contains("text_model.encoder.layers.0.mlp.fc2.weight", clipKeys);
        Assert.Contains("text_model.final_layer_norm.weight", clipKeys);
    }
}
