using System.Text.Json;
using System.Text.Json.Serialization;

namespace Likeness.Engine.Autoencoder;

/// <summary>The FLUX autoencoder's configuration (reference <c>AutoEncoderParams</c>, snake_case JSON, 9 keys).</summary>
public sealed record AutoEncoderParams(
    [property: JsonPropertyName("resolution")] int Resolution,
    [property: JsonPropertyName("in_channels")] int InChannels,
    [property: JsonPropertyName("ch")] int Ch,
    [property: JsonPropertyName("out_ch")] int OutCh,
    [property: JsonPropertyName("ch_mult")] int[] ChMult,
    [property: JsonPropertyName("num_res_blocks")] int NumResBlocks,
    [property: JsonPropertyName("z_channels")] int ZChannels,
    [property: JsonPropertyName("scale_factor")] double ScaleFactor,
    [property: JsonPropertyName("shift_factor")] double ShiftFactor)
{
    /// <summary>FLUX.1's <c>ae.safetensors</c>: 16 latent channels, stride 8.</summary>
    public static readonly AutoEncoderParams Flux = new(256, 3, 128, 3, [1, 2, 4, 4], 2, 16, 0.3611, 0.1159);

    /// <summary>The same structure (stride 8, 16 channels) with 32 base channels and one res block per level.</summary>
    public static readonly AutoEncoderParams Tiny = new(256, 3, 32, 3, [1, 1, 2, 2], 1, 16, 0.3611, 0.1159);

    private static readonly string[] ReferenceKeys =
        ["resolution", "in_channels", "ch", "out_ch", "ch_mult", "num_res_blocks", "z_channels", "scale_factor", "shift_factor"];

    /// <summary>Keys only a diffusers <c>AutoencoderKL</c> config has; the reference form has none of them.</summary>
    private static readonly string[] DiffusersKeys = ["_class_name", "block_out_channels", "latent_channels", "layers_per_block"];

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>
    /// Reads the reference form (the 9 keys of <c>AutoEncoderParams</c>) or a diffusers <c>vae/config.json</c>
    /// (<see cref="ModelConfigs.ReadVae"/>), told apart by their keys; a missing key is refused by name.
    /// </summary>
    public static AutoEncoderParams FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var c = doc.RootElement;
        AutoEncoderParams p;
        if (DiffusersKeys.Any(k => c.TryGetProperty(k, out _)))
        {
            try { p = ModelConfigs.ReadVae(c); }
            catch (KeyNotFoundException e) { throw new ArgumentException($"The autoencoder config (diffusers AutoencoderKL form) has {e.Message}"); }
        }
        else
        {
            var missing = ReferenceKeys.Where(k => !c.TryGetProperty(k, out _)).ToArray();
            if (missing.Length > 0)
                throw new ArgumentException($"The autoencoder config (reference AutoEncoderParams form) has no {string.Join(", ", missing)}.");
            p = JsonSerializer.Deserialize<AutoEncoderParams>(json, Json) ?? throw new ArgumentException("The autoencoder config is empty.");
        }
        p.Validate();
        return p;
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public void Validate()
    {
        if (ChMult.Length == 0 || ChMult.Any(m => m <= 0)) throw new ArgumentException("ch_mult needs at least one positive multiplier.");
        // Every ResnetBlock and AttnBlock normalises with GroupNorm(32): each level's width must split into 32 groups.
        if (ChMult.Any(m => Ch * m % 32 != 0))
            throw new ArgumentException($"ch {Ch} × ch_mult [{string.Join(", ", ChMult)}] gives widths that GroupNorm(32) cannot split.");
        if (NumResBlocks < 1 || InChannels < 1 || OutCh < 1 || ZChannels < 1)
            throw new ArgumentException("num_res_blocks, in_channels, out_ch and z_channels must be positive.");
        if (ScaleFactor == 0) throw new ArgumentException("scale_factor 0 cannot be inverted by decode.");
    }
}
