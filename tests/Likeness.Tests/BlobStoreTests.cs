using System.Text;
using Likeness.Core.Blobs;
using Likeness.Core.Ports;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>The blob store contract, on the local folder and on a real S3-compatible server.</summary>
public sealed class BlobStoreTests
{
    private static async Task ExerciseAsync(IBlobStore store)
    {
        Assert.Null(await store.OpenReadAsync("loras/a/photos/001.png", default));
        Assert.False(await store.ExistsAsync("loras/a/photos/001.png", default));
        var big = new byte[3 * 1024 * 1024 + 17];
        new Random(1).NextBytes(big);
        await store.PutAsync("loras/a/photos/001.png", new MemoryStream(big), default);
        await store.PutAsync("loras/a/photos/002.png", new MemoryStream(Encoding.UTF8.GetBytes("two")), default);
        await store.PutAsync("loras/b/dataset.zip", new MemoryStream(Encoding.UTF8.GetBytes("zip")), default);
        Assert.True(await store.ExistsAsync("loras/a/photos/001.png", default));

        await using (var read = await store.OpenReadAsync("loras/a/photos/001.png", default))
        {
            using var copy = new MemoryStream();
            await read!.CopyToAsync(copy);
            Assert.Equal(big, copy.ToArray());
        }
        var listed = await store.ListAsync("loras/a/photos/", default);
        Assert.True(listed.SequenceEqual(["loras/a/photos/001.png", "loras/a/photos/002.png"]), string.Join(" ; ", listed));

        // The orphan sweeper's walk: every blob with when it was written (clocks of an S3 server may differ a little).
        var walked = new List<StoredBlob>();
        await foreach (var blob in store.EnumerateAsync("loras/", default)) walked.Add(blob);
        Assert.Equal(["loras/a/photos/001.png", "loras/a/photos/002.png", "loras/b/dataset.zip"], walked.Select(b => b.Key));
        Assert.All(walked, b => Assert.InRange(b.LastModified, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5)));
        Assert.Equal(0, await store.RemoveInterruptedWritesAsync(DateTimeOffset.UtcNow.AddMinutes(-1), default)); // none was cut short

        await store.PutAsync("loras/a/photos/002.png", new MemoryStream(Encoding.UTF8.GetBytes("replaced")), default);
        await using (var read = await store.OpenReadAsync("loras/a/photos/002.png", default))
            Assert.Equal("replaced", await new StreamReader(read!).ReadToEndAsync());

        await store.DeletePrefixAsync("loras/a/", default);
        Assert.Empty(await store.ListAsync("loras/a/", default));
        Assert.True(await store.ExistsAsync("loras/b/dataset.zip", default));
    }

    [Fact]
    public async Task The_local_folder_keeps_the_contract() =>
        await ExerciseAsync(new FileBlobStore(Directory.CreateTempSubdirectory().FullName));

    [SkippableFact]
    public async Task An_s3_compatible_bucket_keeps_the_contract()
    {
        Skip.If(S3Endpoint.SkipReason is not null, S3Endpoint.SkipReason);
        using var store = S3BlobStore.FromSetting(S3Endpoint.FreshSetting());
        await ExerciseAsync(store);
    }
}
