using System.Net;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using SkiaSharp;

namespace Likeness.Tests.Storage;

/// <summary>A full disk is the server's trouble: 507 insufficient_storage, nothing stored, nothing charged (issue #11, defect 4).</summary>
[Collection(ProcessTests.Name)]
public sealed class DiskFullTests
{
    [SkippableFact]
    public async Task A_full_disk_while_the_upload_is_staged_is_507_and_stores_and_charges_nothing()
    {
        using var disk = SmallDisk.TryMount(6, out var whyNot);
        Skip.If(disk is null, whyNot);
        // The whole data folder (database, staging, blobs) is on the small disk; the photos alone do not fit in it.
        await using var server = await LikenessServer.StartAsync(dataFolder: disk.Path);
        await AssertRefusedAsync(server, disk.Path, Path.Combine(disk.Path, "blobs"));
    }

    [SkippableFact]
    public async Task A_full_blob_store_while_the_photos_are_stored_is_507_and_stores_and_charges_nothing()
    {
        using var disk = SmallDisk.TryMount(4, out var whyNot);
        Skip.If(disk is null, whyNot);
        // Staging (in the data folder) has room; the blob store, on the small disk, fills part-way through the copy.
        await using var server = await LikenessServer.StartAsync(new Dictionary<string, string?> { ["Likeness:Blobs"] = "file:" + disk.Path });
        await AssertRefusedAsync(server, server.DataFolder, disk.Path);
    }

    private static async Task AssertRefusedAsync(LikenessServer server, string dataFolder, string blobs)
    {
        var credits = await server.CreditsAsync();
        var entries = await server.WithDb(db => db.Ledger.CountAsync());
        // 15 photos of ~640 KB each (noise does not compress): 9.6 MB, more than either small disk holds.
        var photos = Enumerable.Range(0, 15).Select(i => NoisePng(i, 400)).ToList();
        var response = await server.Client.PostAsync("/v2/loras", LoraForms.Create(photos));

        var problem = await Problem.AssertAsync(response, 507, "insufficient_storage");
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.DoesNotContain(dataFolder, detail);
        Assert.DoesNotContain("/", detail);
        Assert.Equal(credits, await server.CreditsAsync());
        Assert.Equal(entries, await server.WithDb(db => db.Ledger.CountAsync()));
        Assert.Equal(0, await server.WithDb(db => db.Loras.CountAsync()));
        Assert.Empty(DataFolders.Files(Path.Combine(dataFolder, "staging")));
        Assert.Empty(DataFolders.Files(blobs));

        // The refusal left nothing that takes room: photos that fit are accepted as usual.
        var small = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1300)));
        Assert.Equal(HttpStatusCode.Accepted, small.StatusCode);
    }

    private static byte[] NoisePng(int seed, int side)
    {
        var random = new Random(seed);
        using var bitmap = new SKBitmap(side, side);
        var pixels = new byte[side * side * 4];
        random.NextBytes(pixels);
        for (var i = 3; i < pixels.Length; i += 4) pixels[i] = 255;
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
