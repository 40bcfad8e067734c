using System.Buffers.Binary;
using System.Diagnostics;
using Likeness.Core.Media;
using SkiaSharp;
using Xunit.Abstractions;
using static Likeness.Core.Tests.ImageHardeningTests;

namespace Likeness.Core.Tests;

/// <summary>
/// Issue #11 item 6: a deterministic, seeded mutation fuzz of the image inspector. Seeds are real files (the
/// repository's docs/fidelity.png, and a crop of it re-encoded as JPEG, PNG and WebP); mutations are truncation, bit
/// flips, overwritten runs, PNG chunk length lies (with and without a fixed CRC), huge dimensions in PNG IHDR, JPEG
/// SOF and WebP VP8X/VP8 headers, and duplicated spans. Every case must end, within seconds, in an accepted image
/// inside the limits or a <see cref="MediaValidationException"/> with a code of the API — never another exception.
/// </summary>
public sealed class ImageFuzzTests(ITestOutputHelper output)
{
    private const int Seed = 20261127;
    private const int CasesPerSeed = 300;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan PerCase = TimeSpan.FromSeconds(10);
    private static readonly string[] Codes = [MediaCodes.TooLarge, MediaCodes.Unsupported, MediaCodes.TooSmall, MediaCodes.TooManyPixels, MediaCodes.MetadataTooLarge];

    [Fact]
    public async Task Mutated_images_are_accepted_or_refused_with_an_api_code_and_never_hang()
    {
        var seeds = SeedFiles();
        var random = new Random(Seed);
        var clock = Stopwatch.StartNew();
        var path = Path.GetTempFileName();
        var (cases, accepted) = (0, 0);
        var refusals = new Dictionary<string, int>();
        try
        {
            for (var i = 0; i < CasesPerSeed && clock.Elapsed < Budget; i++)
            {
                foreach (var (name, original) in seeds)
                {
                    var (mutation, bytes) = Mutate(original, random);
                    File.WriteAllBytes(path, bytes);
                    var label = $"case {cases} ({name}, {mutation}, seed {Seed})";
                    var run = Task.Run(() => ImageInspector.Inspect(path));
                    Assert.True(await Task.WhenAny(run, Task.Delay(PerCase)) == run, $"{label}: still inspecting after {PerCase.TotalSeconds} s");
                    cases++;
                    Exception? error = null;
                    try
                    {
                        var image = await run;
                        Assert.True(Math.Min(image.Width, image.Height) >= ImageInspector.MinSide && (long)image.Width * image.Height <= ImageInspector.MaxPixels,
                            $"{label}: accepted a {image.Width}×{image.Height} image");
                        accepted++;
                        continue;
                    }
                    catch (Exception e) when (e is not Xunit.Sdk.XunitException) { error = e; }
                    var refusal = Assert.IsType<MediaValidationException>(error, exactMatch: true);
                    Assert.True(refusal.Code.Length > 0, $"{label}: {error}");
                    Assert.Contains(refusal.Code, Codes);
                    refusals[refusal.Code] = refusals.GetValueOrDefault(refusal.Code) + 1;
                }
            }
        }
        finally { File.Delete(path); }
        output.WriteLine($"{cases} cases in {clock.Elapsed.TotalSeconds:F1} s: {accepted} accepted, refused {string.Join(", ", refusals.Select(kv => $"{kv.Key} {kv.Value}"))}");
        Assert.True(cases >= 4 * seeds.Count, $"only {cases} cases ran");
        Assert.True(refusals.GetValueOrDefault(MediaCodes.Unsupported) > 0 && accepted > 0, "the mutations should both break and spare some files");
    }

    private static List<(string Name, byte[] Bytes)> SeedFiles()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Likeness.slnx"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
        var real = File.ReadAllBytes(Path.Combine(root, "docs", "fidelity.png"));
        using var decoded = SKBitmap.Decode(real);
        using var crop = new SKBitmap(320, 240);
        decoded.ExtractSubset(crop, new SKRectI(0, 0, Math.Min(320, decoded.Width), Math.Min(240, decoded.Height)));
        using var image = SKImage.FromBitmap(crop);
        byte[] As(SKEncodedImageFormat f) { using var d = image.Encode(f, 85); return d.ToArray(); }
        return [("fidelity.png", real), ("crop.jpg", As(SKEncodedImageFormat.Jpeg)), ("crop.png", As(SKEncodedImageFormat.Png)), ("crop.webp", As(SKEncodedImageFormat.Webp))];
    }

    private static (string Mutation, byte[] Bytes) Mutate(byte[] original, Random random)
    {
        var b = (byte[])original.Clone();
        switch (random.Next(8))
        {
            case 0:
                var at = random.Next(1, b.Length);
                return ($"truncate at {at}", b[..at]);
            case 1:
                var flips = random.Next(1, 9);
                for (var i = 0; i < flips; i++) b[random.Next(b.Length)] ^= (byte)(1 << random.Next(8));
                return ($"{flips} bit flips", b);
            case 2:
                var start = random.Next(b.Length);
                var run = Math.Min(b.Length - start, random.Next(1, 64));
                random.NextBytes(b.AsSpan(start, run));
                return ($"{run} random bytes at {start}", b);
            case 3:
                var from = random.Next(b.Length);
                var span = Math.Min(b.Length - from, random.Next(1, 4096));
                var to = random.Next(b.Length);
                return ($"{span} bytes from {from} copied in at {to}", [.. b[..to], .. b.AsSpan(from, span), .. b[to..]]);
            case 4 when ImageInspector.Sniff(b) == "png":
                return LieAboutAChunkLength(b, random);
            case 5:
                return HugeDimensions(b, random);
            default:
                var bytes = random.Next(1, 4);
                for (var i = 0; i < bytes; i++) b[random.Next(Math.Min(b.Length, 64))] = (byte)random.Next(256);
                return ($"{bytes} header bytes overwritten", b);
        }
    }

    private static (string, byte[]) LieAboutAChunkLength(byte[] b, Random random)
    {
        var offsets = new List<int>();
        for (var p = 8; p + 12 <= b.Length; p += 12 + (int)BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(p))) offsets.Add(p);
        var chunk = offsets[random.Next(offsets.Count)];
        uint[] lies = [0, 1, 13, 0x7FFFFFFF, 0xFFFFFFFF, (uint)b.Length, (uint)random.Next(1 << 24)];
        var lie = lies[random.Next(lies.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(chunk), lie);
        return ($"chunk at {chunk} claims {lie} bytes", b);
    }

    private static (string, byte[]) HugeDimensions(byte[] b, Random random)
    {
        int[] sides = [0, 1, 63, 16383, 65535, 100_000, int.MaxValue];
        var w = sides[random.Next(sides.Length)];
        var h = sides[random.Next(sides.Length)];
        switch (ImageInspector.Sniff(b))
        {
            case "png":
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), (uint)w);
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), (uint)h);
                if (random.Next(2) == 0) BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(29), ImageHeader.Crc32(b.AsSpan(12, 17)));
                return ($"IHDR {w}×{h}", b);
            case "jpeg":
                for (var i = 2; i + 9 < b.Length;)
                {
                    if (b[i] != 0xFF) break;
                    var marker = b[i + 1];
                    if (marker is >= 0xC0 and <= 0xC2)
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(i + 5), (ushort)Math.Min(h, 65535));
                        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(i + 7), (ushort)Math.Min(w, 65535));
                        return ($"SOF {Math.Min(w, 65535)}×{Math.Min(h, 65535)}", b);
                    }
                    i += 2 + BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(i + 2));
                }
                return ("SOF not found", b);
            default:
                // WebP: the simple format's VP8 frame header (14-bit sides) or the extended VP8X canvas (24-bit sides).
                if (b.Length > 30 && b.AsSpan(12, 4).SequenceEqual("VP8 "u8))
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(26), (ushort)(Math.Min(w, 16383) & 0x3FFF));
                    BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(28), (ushort)(Math.Min(h, 16383) & 0x3FFF));
                    return ($"VP8 {Math.Min(w, 16383)}×{Math.Min(h, 16383)}", b);
                }
                if (b.Length > 30 && b.AsSpan(12, 4).SequenceEqual("VP8X"u8))
                {
                    var (cw, ch) = (Math.Clamp(w, 1, 1 << 24) - 1, Math.Clamp(h, 1, 1 << 24) - 1);
                    b[24] = (byte)cw; b[25] = (byte)(cw >> 8); b[26] = (byte)(cw >> 16);
                    b[27] = (byte)ch; b[28] = (byte)(ch >> 8); b[29] = (byte)(ch >> 16);
                    return ($"VP8X {cw + 1}×{ch + 1}", b);
                }
                return ("no WebP size header", b);
        }
    }
}
