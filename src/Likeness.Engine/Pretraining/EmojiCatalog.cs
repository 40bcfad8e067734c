using System.Text.Json;
using SkiaSharp;

namespace Likeness.Engine.Pretraining;

/// <summary>One Fluent Emoji 3D render with its name: <c>Base</c> is the emoji without skin tone, shared by its variants.</summary>
public sealed record EmojiEntry(string Code, string Base, string Name, string? SkinTone, string Category, string File);

/// <summary>
/// The Fluent Emoji 3D renders named by emoji-datasource (see <c>build/fetch-emoji.sh</c>): each render is matched to
/// its entry by code points (the renders' names drop some <c>fe0f</c> selectors), skin-tone variants to their base
/// entry. About one base emoji in ten is held out of pretraining entirely, with its variants, chosen by a hash of its
/// code points, so that the same objects are held out on every machine.
/// </summary>
public sealed class EmojiCatalog
{
    /// <summary>One in this many base emoji (by hash) is never shown in pretraining.</summary>
    public const int HoldOutOneIn = 10;

    private static readonly Dictionary<string, string> Tones = new(StringComparer.OrdinalIgnoreCase)
    {
        ["1f3fb"] = "light", ["1f3fc"] = "medium-light", ["1f3fd"] = "medium", ["1f3fe"] = "medium-dark", ["1f3ff"] = "dark",
    };

    public IReadOnlyList<EmojiEntry> Training { get; }
    public IReadOnlyList<EmojiEntry> HeldOut { get; }
    public string Folder { get; }

    private EmojiCatalog(string folder, List<EmojiEntry> all)
    {
        Folder = folder;
        Training = all.Where(e => !IsHeldOut(e.Base)).ToList();
        HeldOut = all.Where(e => IsHeldOut(e.Base)).ToList();
    }

    public static bool IsHeldOut(string baseCode)
    {
        // FNV-1a over the code points: stable across runtimes, unlike string.GetHashCode.
        var hash = 2166136261u;
        foreach (var c in baseCode) hash = (hash ^ c) * 16777619u;
        return hash % HoldOutOneIn == 0;
    }

    public static EmojiCatalog Load(string folder)
    {
        var assets = Path.Combine(folder, "assets");
        var json = Path.Combine(folder, "emoji.json");
        if (!Directory.Exists(assets) || !File.Exists(json))
            throw new InvalidOperationException($"{folder} is not an emoji set: run build/fetch-emoji.sh {folder} first (it needs npm).");
        var files = Directory.EnumerateFiles(assets, "*.webp").ToDictionary(f => Path.GetFileNameWithoutExtension(f).ToLowerInvariant(), f => f);
        var entries = new List<EmojiEntry>();
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            var category = e.GetProperty("category").GetString()!;
            if (category is "Component" or "Flags") continue; // skin swatches and flags: no object to name
            var unified = e.GetProperty("unified").GetString()!.ToLowerInvariant();
            var name = Clean(e.GetProperty("name").GetString()!);
            if (Find(files, unified) is { } file) entries.Add(new EmojiEntry(unified, unified, name, null, category, file));
            if (!e.TryGetProperty("skin_variations", out var variations) || variations.ValueKind != JsonValueKind.Object) continue;
            foreach (var v in variations.EnumerateObject())
            {
                var code = v.Value.GetProperty("unified").GetString()!.ToLowerInvariant();
                var tones = v.Name.ToLowerInvariant().Split('-').Select(t => Tones.GetValueOrDefault(t)).ToArray();
                if (tones.Any(t => t is null) || Find(files, code) is not { } variantFile) continue;
                var tone = tones.Distinct().Count() == 1 ? tones[0] + " skin" : string.Join(" and ", tones.Distinct()) + " skin";
                entries.Add(new EmojiEntry(code, unified, name, tone, category, variantFile));
            }
        }
        if (entries.Count == 0) throw new InvalidOperationException($"No render in {assets} matches a name in {json}.");
        return new EmojiCatalog(folder, entries.OrderBy(e => e.Code, StringComparer.Ordinal).ToList());
    }

    private static string? Find(Dictionary<string, string> files, string code) =>
        files.GetValueOrDefault(code) ?? files.GetValueOrDefault(code.Replace("-fe0f", "", StringComparison.Ordinal));

    /// <summary>"MAN IN LOTUS POSITION" / "Egypt Flag" → "man in lotus position"; "face with tears of joy".</summary>
    private static string Clean(string name) => name.ToLowerInvariant().Replace('_', ' ').Trim();

    /// <summary>Decodes a render to premultiplied RGBA at <paramref name="size"/> × <paramref name="size"/>.</summary>
    public static SKImage Decode(string file, int size)
    {
        using var decoded = SKBitmap.Decode(file) ?? throw new InvalidDataException($"{file} cannot be decoded.");
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var resized = decoded.Resize(info, new SKSamplingOptions(SKCubicResampler.Mitchell));
        return SKImage.FromBitmap(resized);
    }
}
