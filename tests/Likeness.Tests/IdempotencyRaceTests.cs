using System.Net;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Likeness.Tests;

/// <summary>Requests racing on one Idempotency-Key: one LoRA, and the race is ordinary work, not an error in the log.</summary>
public sealed class IdempotencyRaceTests
{
    [Fact]
    public async Task Racing_requests_with_one_key_make_one_lora_and_log_no_database_error()
    {
        var logs = new LogCapture();
        // The API role runs no workers: nothing but the racing requests touches the database.
        await using var server = await LikenessServer.StartAsync(
            new Dictionary<string, string?> { ["Likeness:Role"] = "api" },
            services: logs.AddTo);
        var photos = TestImages.Pngs(15, 780);

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/loras") { Content = LoraForms.Create(photos) };
            request.Headers.Add("Idempotency-Key", "race-1");
            var response = await server.Client.SendAsync(request);
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));

        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.Accepted ||
            (r.StatusCode is HttpStatusCode.Conflict && r.Body.Contains("idempotency_in_progress")), $"{r.StatusCode}: {r.Body}"));
        Assert.Equal(1, await server.WithDb(db => db.Loras.CountAsync()));
        var errors = logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }
}
