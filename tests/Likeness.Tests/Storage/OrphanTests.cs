using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Blobs;
using Likeness.Core.Data;
using Likeness.Core.Ports;
using Likeness.Core.Storage;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Tests.Storage;

/// <summary>Nothing a request or job stores outlives it unless a row references it (issue #11, defect 1).</summary>
[Collection(ProcessTests.Name)]
public sealed class OrphanTests
{
    [Fact]
    public async Task A_client_that_hangs_up_while_its_photos_are_stored_leaves_nothing_behind_and_is_not_charged()
    {
        var data = LikenessServer.NewDataFolder();
        Directory.CreateDirectory(data);
        var stalling = new StallingBlobStore(new FileBlobStore(Path.Combine(data, "blobs")), stallAtPhoto: 4);
        try
        {
            await using (var server = await LikenessServer.StartAsync(dataFolder: data,
                             services: s => s.AddSingleton<IBlobStore>(stalling)))
            {
                var credits = await server.CreditsAsync();
                using var hangUp = new CancellationTokenSource();
                var post = server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1100)), hangUp.Token);

                // Three photos are in the blob store and the fourth is being written when the client goes away.
                await stalling.Stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));
                Assert.Equal(3, DataFolders.Files(Path.Combine(data, "blobs")).Count);
                await hangUp.CancelAsync();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => post);

                var staging = Path.Combine(data, "staging");
                await DataFolders.WaitUntilAsync(() => DataFolders.Files(staging).Count == 0 && DataFolders.Files(Path.Combine(data, "blobs")).Count == 0,
                    TimeSpan.FromSeconds(30), () => "left behind: " + string.Join(", ", DataFolders.Files(data)));

                using (var scope = server.App.Services.CreateScope())
                    await scope.ServiceProvider.GetRequiredService<OrphanSweeper>().SweepAsync(default);
                Assert.Empty(DataFolders.Files(Path.Combine(data, "blobs")));
                Assert.Empty(DataFolders.Files(staging));
                Assert.Equal(0, await server.WithDb(db => db.Loras.CountAsync()));
                Assert.Equal(credits, await server.CreditsAsync());
                Assert.Equal(1, await server.WithDb(db => db.Ledger.CountAsync())); // the bootstrap grant only
            }
        }
        finally
        {
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task A_restart_sweeps_what_no_row_references_and_keeps_what_is_in_use_or_still_young()
    {
        var data = LikenessServer.NewDataFolder();
        Directory.CreateDirectory(data);
        try
        {
            string readyId;
            List<string> referenced;
            await using (var first = await LikenessServer.StartAsync(dataFolder: data))
            {
                var created = await first.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1200)));
                Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
                readyId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
                var (lora, _) = await first.WaitForLoraAsync(readyId, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
                Assert.Equal("READY", lora.GetProperty("status").GetString());
                referenced = DataFolders.Files(Path.Combine(data, "blobs"));

                // A purge cut short right after it marked the LoRA (its files not yet erased).
                var toPurge = await first.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1250)));
                var purgedId = (await toPurge.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
                Assert.Equal(HttpStatusCode.OK, (await first.Client.PostAsync($"/v2/loras/{purgedId}/cancel", null)).StatusCode);
                await first.WithDb(db => db.Loras.Where(l => l.Id == purgedId).ExecuteUpdateAsync(u => u.SetProperty(l => l.Purged, true)));
                Assert.NotEmpty(DataFolders.Files(Path.Combine(data, "blobs", "loras", purgedId)));
            }

            // What a killed process leaves: a copy cut short (recorded in its staging folder), blobs of a LoRA and a
            // generation that were never committed, a half-written blob, a work folder and a cached adapter nothing needs.
            var old = DateTime.UtcNow.AddHours(-2);
            var stagingRoot = Path.Combine(data, "staging");
            var killedId = "lora_" + new string('a', 26);
            Directory.CreateDirectory(Path.Combine(stagingRoot, "killed"));
            await File.WriteAllTextAsync(Path.Combine(stagingRoot, "killed", ".lock"), "");
            await File.WriteAllTextAsync(Path.Combine(stagingRoot, "killed", ".lora"), killedId);
            Plant(data, $"blobs/loras/{killedId}/photos/001.png", DateTime.UtcNow); // young, but recorded as interrupted
            Plant(data, $"blobs/loras/lora_{new string('b', 26)}/photos/001.png", old);
            Plant(data, $"blobs/generations/img_{new string('c', 26)}/0.png", old);
            Plant(data, $"blobs/loras/{readyId}/photos/002.png.0123456789abcdef.tmp", old);
            Plant(data, $"work/lora_{new string('d', 26)}/train/step-2.safetensors", old);
            Plant(data, $"work/{readyId}/train/step-2.safetensors", old); // READY: its checkpoints are not needed again
            Plant(data, $"work/adapters/lora_{new string('e', 26)}.safetensors", old);
            // Kept: an unreferenced blob younger than the grace period (another node may be copying it) and an upload in progress.
            var young = $"blobs/loras/lora_{new string('f', 26)}/photos/001.png";
            Plant(data, young, DateTime.UtcNow);
            using var live = StagingFolder.Create(stagingRoot);
            await File.WriteAllTextAsync(Path.Combine(live.Path, "000.upload"), "bytes");
            // …and the photos that live upload is copying, however old they look.
            var copyingId = "lora_" + new string('g', 26);
            live.RecordLora(copyingId);
            var copying = $"blobs/loras/{copyingId}/photos/001.png";
            Plant(data, copying, old);

            await using var second = await LikenessServer.StartAsync(dataFolder: data);
            var expected = referenced.Select(f => Path.Combine("blobs", f)).Append(young.Replace('/', Path.DirectorySeparatorChar))
                .Append(copying.Replace('/', Path.DirectorySeparatorChar))
                .Append(Path.GetRelativePath(data, Path.Combine(live.Path, ".lora")))
                .Append(Path.GetRelativePath(data, Path.Combine(live.Path, ".lock")))
                .Append(Path.GetRelativePath(data, Path.Combine(live.Path, "000.upload")))
                .Append("likeness.db").Append("default-api-key").Order().ToList();
            await DataFolders.WaitUntilAsync(() => DataFolders.Files(data).Where(f => !f.StartsWith("likeness.db-")).SequenceEqual(expected),
                TimeSpan.FromSeconds(30), () => "after the start's sweep: " + string.Join(", ", DataFolders.Files(data)));
            Assert.Equal(HttpStatusCode.OK, (await second.Client.GetAsync($"/v2/loras/{readyId}/weights")).StatusCode);
        }
        finally
        {
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    [SkippableFact]
    public async Task The_sweep_judges_blobs_by_the_rows_of_postgres_too()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        await using var server = await LikenessServer.StartAsync(new Dictionary<string, string?>
        {
            ["Likeness:Database"] = pg.ConnectionString, ["Likeness:Role"] = "api",
        });
        var created = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1270)));
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var pendingId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var kept = DataFolders.Files(Path.Combine(server.DataFolder, "blobs"));
        var old = DateTime.UtcNow.AddHours(-2);
        Plant(server.DataFolder, $"blobs/loras/lora_{new string('h', 26)}/photos/001.png", old);
        Plant(server.DataFolder, $"blobs/generations/img_{new string('j', 26)}/0.png", old);

        using (var scope = server.App.Services.CreateScope())
            await scope.ServiceProvider.GetRequiredService<OrphanSweeper>().SweepAsync(default);
        Assert.Equal(kept, DataFolders.Files(Path.Combine(server.DataFolder, "blobs")));
        Assert.Equal(15, kept.Count(f => f.Contains(pendingId)));
    }

    private static void Plant(string data, string relative, DateTime modified)
    {
        var path = Path.Combine(data, relative.Replace('/', Path.DirectorySeparatorChar));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "left behind");
        File.SetLastWriteTimeUtc(path, modified);
    }

    /// <summary>The real file store, except that the n-th photo's write waits until its request is aborted.</summary>
    private sealed class StallingBlobStore(IBlobStore inner, int stallAtPhoto) : IBlobStore
    {
        private int _photos;
        public TaskCompletionSource Stalled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task PutAsync(string key, Stream content, CancellationToken cancellationToken)
        {
            if (key.Contains("/photos/", StringComparison.Ordinal) && Interlocked.Increment(ref _photos) == stallAtPhoto)
            {
                Stalled.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            await inner.PutAsync(key, content, cancellationToken);
        }

        public Task<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken) => inner.OpenReadAsync(key, cancellationToken);
        public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken) => inner.ExistsAsync(key, cancellationToken);
        public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken) => inner.ListAsync(prefix, cancellationToken);
        public Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken) => inner.DeletePrefixAsync(prefix, cancellationToken);
        public IAsyncEnumerable<StoredBlob> EnumerateAsync(string prefix, CancellationToken cancellationToken) => inner.EnumerateAsync(prefix, cancellationToken);
        public Task<int> RemoveInterruptedWritesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) =>
            inner.RemoveInterruptedWritesAsync(olderThan, cancellationToken);
    }
}
