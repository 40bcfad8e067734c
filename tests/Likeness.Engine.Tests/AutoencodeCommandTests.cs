using Likeness.Engine.Autoencoder;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Tools;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary><c>engine autoencode</c> on files as the reference's side writes them, against the model and the plain statement.</summary>
public sealed class AutoencodeCommandTests
{
    /// <summary>The size the reference check uses: two levels (stride 2), one res block, 32 and 64 channels.</summary>
    private static readonly AutoEncoderParams Small = new(64, 3, 32, 3, [1, 2], 1, 16, 0.3611, 0.1159);

    private const string DiffusersVae = """
        {
          "_class_name": "AutoencoderKL",
          "in_channels": 3,
          "out_channels": 3,
          "block_out_channels": [32, 64],
          "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
          "layers_per_block": 1,
          "latent_channels": 16,
          "norm_num_groups": 32,
          "sample_size": 64,
          "scaling_factor": 0.3611,
          "shift_factor": 0.1159,
          "use_quant_conv": false,
          "use_post_quant_conv": false
        }
        """;

    [Fact]
    public void Encodes_an_image_and_decodes_its_latent_as_the_model_and_the_plain_statement_do()
    {
        using var ae = Weights(Small, 3);
        using var image = Image(1, 3, 16, 16, 4);
        var dir = Write(Small.ToJson(), ae, ("image", image));

        var outputs = Run(dir);

        Assert.Equal(["decoded", "latent"], outputs.Keys.Order(StringComparer.Ordinal));
        using var noGrad = no_grad();
        using var latent = ae.Encode(image);
        using var decoded = ae.Decode(latent);
        Assert.Equal([1L, 16, 8, 8], outputs["latent"].shape);
        Assert.Equal([1L, 3, 16, 16], outputs["decoded"].shape);
        Assert.True((outputs["latent"] - latent).abs().max().item<float>() <= 1e-6);
        Assert.True((outputs["decoded"] - decoded).abs().max().item<float>() <= 1e-6);
        var naive = Naive(Small, ae);
        AssertClose(naive.Encode(Plain(image, 0)), outputs["latent"], 0);
        AssertClose(naive.Decode(Plain(outputs["latent"], 0)), outputs["decoded"], 0);
    }

    [Fact]
    public void Decodes_the_given_latent_rather_than_the_encoded_one_under_a_diffusers_vae_config()
    {
        using var ae = Weights(Small, 5);
        using var image = Image(1, 3, 16, 16, 6);
        using var given = randn([1, 16, 4, 6], generator: new Generator(7, device("cpu")));
        var dir = Write(DiffusersVae, ae, ("image", image), ("latent", given));

        var outputs = Run(dir);

        using var noGrad = no_grad();
        using var latent = ae.Encode(image);
        using var decoded = ae.Decode(given);
        Assert.True((outputs["latent"] - latent).abs().max().item<float>() <= 1e-6);
        Assert.Equal([1L, 3, 8, 12], outputs["decoded"].shape);
        Assert.True((outputs["decoded"] - decoded).abs().max().item<float>() <= 1e-6);
        AssertClose(Naive(Small, ae).Decode(Plain(given, 0)), outputs["decoded"], 0);
    }

    [Fact]
    public void Decodes_a_latent_alone_and_writes_no_latent()
    {
        using var ae = Weights(Small, 8);
        using var given = randn([2, 16, 3, 3], generator: new Generator(9, device("cpu")));
        var dir = Write(Small.ToJson(), ae, ("latent", given));

        var outputs = Run(dir);

        Assert.Equal(["decoded"], outputs.Keys);
        using var noGrad = no_grad();
        using var decoded = ae.Decode(given);
        Assert.True((outputs["decoded"] - decoded).abs().max().item<float>() <= 1e-6);
    }

    [Fact]
    public void A_non_square_odd_sized_batch_with_four_latent_channels_matches_the_plain_statement_item_by_item()
    {
        var config = Small with { ZChannels = 4, ScaleFactor = 1.5, ShiftFactor = -0.25 };
        using var ae = Weights(config, 10);
        using var image = Image(2, 3, 13, 22, 11);
        var dir = Write(config.ToJson(), ae, ("image", image));

        var outputs = Run(dir);

        // One zero row and column after the image, then a 3×3 conv with stride 2: 13 rows → 6, 22 columns → 11.
        Assert.Equal([2L, 4, 6, 11], outputs["latent"].shape);
        Assert.Equal([2L, 3, 12, 22], outputs["decoded"].shape);
        var naive = Naive(config, ae);
        for (var b = 0; b < 2; b++)
        {
            AssertClose(naive.Encode(Plain(image, b)), outputs["latent"], b);
            AssertClose(naive.Decode(Plain(outputs["latent"], b)), outputs["decoded"], b);
        }
    }

    [Fact]
    public void Refuses_a_reference_config_that_lacks_keys_and_names_them()
    {
        var json = Small.ToJson().Replace("\"ch_mult\"", "\"channel_mult\"").Replace("\"z_channels\"", "\"latent\"");
        var e = Assert.Throws<ArgumentException>(() => AutoEncoderParams.FromJson(json));
        Assert.Contains("ch_mult", e.Message);
        Assert.Contains("z_channels", e.Message);
        Assert.DoesNotContain("num_res_blocks", e.Message);
    }

    [Fact]
    public void Refuses_a_diffusers_config_that_lacks_keys_and_names_them()
    {
        var json = DiffusersVae.Replace("\"layers_per_block\"", "\"layers\"").Replace("\"latent_channels\"", "\"latents\"");
        var e = Assert.Throws<ArgumentException>(() => AutoEncoderParams.FromJson(json));
        Assert.Contains("layers_per_block", e.Message);
        Assert.Contains("latent_channels", e.Message);
        Assert.Contains("diffusers", e.Message);
    }

    [Fact]
    public void Both_config_forms_describe_the_same_network()
    {
        var reference = AutoEncoderParams.FromJson(Small.ToJson());
        var diffusers = AutoEncoderParams.FromJson(DiffusersVae);
        Assert.Equal(Small.ToJson(), reference.ToJson());
        // The resolution is not in a diffusers config and changes nothing in the network.
        Assert.Equal((reference with { Resolution = 256 }).ToJson(), diffusers.ToJson());
    }

    [Fact]
    public void Refuses_inputs_without_an_image_or_a_latent_and_writes_nothing()
    {
        using var ae = Weights(Small, 12);
        using var other = zeros(1, 3, 8, 8);
        var dir = Write(Small.ToJson(), ae, ("img", other));

        var e = Assert.Throws<InvalidDataException>(() => Run(dir));

        Assert.Contains("'image'", e.Message);
        Assert.Contains("'latent'", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "out.safetensors")));
    }

    [Fact]
    public void Refuses_a_latent_whose_channels_are_not_the_configs()
    {
        using var ae = Weights(Small, 13);
        using var latent = zeros(1, 4, 2, 2);
        var dir = Write(Small.ToJson(), ae, ("latent", latent));

        var e = Assert.Throws<InvalidDataException>(() => Run(dir));

        Assert.Contains("[1, 4, 2, 2]", e.Message);
        Assert.Contains("[B, 16, height, width]", e.Message);
    }

    /// <summary>Seeded weights with every norm and bias moved off its initial value, so that each of them shows in the output.</summary>
    private static AutoEncoder Weights(AutoEncoderParams p, long seed)
    {
        var ae = AutoEncoder.CreateInitialized(p, seed);
        using var noGrad = no_grad();
        using var g = new Generator((ulong)seed + 100, device("cpu"));
        foreach (var (name, parameter) in ae.named_parameters().OrderBy(x => x.name, StringComparer.Ordinal))
        {
            if (name.Contains("norm") && name.EndsWith(".weight", StringComparison.Ordinal)) parameter.copy_(1 + randn(parameter.shape, generator: g) * 0.2);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) parameter.copy_(randn(parameter.shape, generator: g) * 0.1);
        }
        return ae;
    }

    private static Tensor Image(long batch, long channels, long height, long width, ulong seed) =>
        rand([batch, channels, height, width], generator: new Generator(seed, device("cpu"))) * 2 - 1;

    private static string Write(string config, AutoEncoder ae, params (string Name, Tensor Value)[] inputs)
    {
        var dir = Directory.CreateTempSubdirectory("likeness-autoencode-").FullName;
        File.WriteAllText(Path.Combine(dir, "config.json"), config);
        SafeTensorsFile.Save(Path.Combine(dir, "ae.safetensors"), ae.state_dict());
        SafeTensorsFile.Save(Path.Combine(dir, "in.safetensors"), inputs.ToDictionary(i => i.Name, i => i.Value));
        return dir;
    }

    private static Dictionary<string, Tensor> Run(string dir)
    {
        AutoencodeRunner.Run(Path.Combine(dir, "config.json"), Path.Combine(dir, "ae.safetensors"), Path.Combine(dir, "in.safetensors"),
            Path.Combine(dir, "out.safetensors"));
        using var reader = SafeTensorsFile.Open(Path.Combine(dir, "out.safetensors"));
        Assert.All(reader.Keys, k => Assert.Equal("F32", reader.Info(k).Dtype));
        return reader.Keys.ToDictionary(k => k, k => reader.Read(k));
    }

    private static NaiveAutoEncoder Naive(AutoEncoderParams p, AutoEncoder ae) =>
        new(p, ae.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float64).data<double>().ToArray()));

    private static FeatureMap Plain(Tensor t, int item) =>
        new((int)t.shape[1], (int)t.shape[2], (int)t.shape[3], t[item].to_type(ScalarType.Float64).data<double>().ToArray());

    /// <summary>Within 1e-5 of the golden values, which are not trivially small.</summary>
    private static void AssertClose(FeatureMap golden, Tensor actual, int item)
    {
        Assert.Equal([golden.C, golden.H, golden.W], actual[item].shape.Select(d => (int)d));
        var values = actual[item].data<float>().ToArray();
        var maxDiff = golden.V.Select((g, i) => Math.Abs(g - values[i])).Max();
        Assert.True(maxDiff <= 1e-5, $"max |diff| = {maxDiff}");
        Assert.True(golden.V.Max(Math.Abs) > 0.1, "the golden output is not trivially small");
    }
}
