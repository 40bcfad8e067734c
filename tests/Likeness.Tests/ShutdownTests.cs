using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Data;
using Likeness.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Likeness.Tests;

[Collection(ProcessTests.Name)]
public sealed class ShutdownTests
{
    [Fact]
    public async Task A_graceful_stop_hands_the_running_training_back_and_the_next_start_finishes_it()
    {
        var data = LikenessServer.NewDataFolder();
        string id;
        long before;
        await using (var first = await LikenessServer.StartAsync(dataFolder: data))
        {
            before = await first.CreditsAsync();
            var created = await first.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1200), new Dictionary<string, string> { ["steps"] = "400" }));
            id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            await first.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() == "TRAINING" && l.GetProperty("progress").GetProperty("step").GetInt32() >= 4);
        } // StopAsync: the worker is cancelled and hands its job back

        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(data, "likeness.db")}"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = """SELECT "State", "LeaseOwner", "Attempts" FROM jobs WHERE "SubjectId" = $id AND "Queue" = 'training'""";
            command.Parameters.AddWithValue("$id", id);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(JobStates.Queued, reader.GetString(0)); // handed back, not left to a lease timeout
            Assert.True(reader.IsDBNull(1));
            Assert.Equal(0, reader.GetInt32(2)); // the interrupted attempt is not counted against the job
        }

        await using var second = await LikenessServer.StartAsync(dataFolder: data);
        var (lora, _) = await second.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", lora.GetProperty("status").GetString());
        Assert.Equal(before - 257, await second.CreditsAsync());
        Directory.Delete(data, recursive: true);
    }
}
