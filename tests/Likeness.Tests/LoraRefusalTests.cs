using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Tests;

/// <summary>Every refusal of POST /v2/loras: the right problem code, and nothing stored or charged.</summary>
public sealed class LoraRefusalTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LikenessServer Server => fixture.Server;

    private async Task AssertRefusedAsync(HttpContent content, int status, string code, HttpClient? client = null, string? field = null)
    {
        var credits = await Server.CreditsAsync();
        var (loras, ledger) = await Server.WithDb(async db => (await db.Loras.CountAsync(), await db.Ledger.CountAsync()));
        var response = await (client ?? Server.Client).PostAsync("/v2/loras", content);
        var problem = await Problem.AssertAsync(response, status, code);
        if (field is not null) Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        Assert.Equal(credits, await Server.CreditsAsync());
        Assert.Equal((loras, ledger), await Server.WithDb(async db => (await db.Loras.CountAsync(), await db.Ledger.CountAsync())));
        var blobs = Path.Combine(Server.DataFolder, "blobs", "loras");
        Assert.True(!Directory.Exists(blobs) || !Directory.EnumerateFiles(blobs, "*", SearchOption.AllDirectories).Any());
        var staging = Path.Combine(Server.DataFolder, "staging");
        Assert.True(!Directory.Exists(staging) || !Directory.EnumerateFileSystemEntries(staging).Any());
    }

    [Fact]
    public Task Refuses_a_request_without_a_key() =>
        AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15)), 401, "unauthorized", Server.CreateClient(null));

    [Fact]
    public Task Refuses_an_unknown_key() =>
        AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15)), 401, "unauthorized", Server.CreateClient("lk_not-a-real-key"));

    [Fact]
    public async Task Accepts_the_key_as_a_bearer_token()
    {
        var client = Server.CreateClient(null);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Server.ApiKey);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/team")).StatusCode);
    }

    [Fact]
    public Task Refuses_fourteen_images() => AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(14)), 400, "too_few_images");

    [Fact]
    public Task Refuses_thirty_one_images() => AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(31)), 400, "too_many_images");

    [Fact]
    public Task Refuses_a_forged_png()
    {
        var images = TestImages.Pngs(15);
        images[3] = [.. images[3][..16], .. Encoding.ASCII.GetBytes("this is not really a picture at all")];
        return AssertRefusedAsync(LoraForms.Create(images), 400, "unsupported_image");
    }

    [Fact]
    public Task Refuses_a_text_file_named_png()
    {
        var images = TestImages.Pngs(15);
        images[0] = Encoding.UTF8.GetBytes("hello, I am a text file");
        return AssertRefusedAsync(LoraForms.Create(images), 400, "unsupported_image");
    }

    [Fact]
    public Task Refuses_an_image_smaller_than_64_pixels()
    {
        var images = TestImages.Pngs(15);
        images[5] = TestImages.Png(99, 63, 200);
        return AssertRefusedAsync(LoraForms.Create(images), 400, "image_too_small");
    }

    [Fact]
    public Task Refuses_an_image_over_50_megapixels_from_its_header()
    {
        var images = TestImages.Pngs(15);
        images[7] = PngWithHeaderSize(10_000, 6_000);
        return AssertRefusedAsync(LoraForms.Create(images), 400, "image_too_many_pixels");
    }

    [Fact]
    public Task Refuses_an_image_over_10_MiB()
    {
        var images = TestImages.Pngs(15);
        images[1] = [.. images[1], .. new byte[10 * 1024 * 1024]];
        return AssertRefusedAsync(LoraForms.Create(images), 400, "image_too_large");
    }

    [Fact]
    public Task Refuses_two_identical_images()
    {
        var images = TestImages.Pngs(15);
        images[9] = images[2];
        return AssertRefusedAsync(LoraForms.Create(images), 400, "duplicate_image");
    }

    [Fact]
    public Task Refuses_a_body_that_is_not_multipart() =>
        AssertRefusedAsync(new StringContent("{\"name\":\"x\"}", Encoding.UTF8, "application/json"), 400, "malformed_multipart");

    [Fact]
    public async Task Refuses_a_body_over_101_MiB_with_413()
    {
        // With "Expect: 100-continue" the client waits for the verdict before sending the body, as careful clients do.
        using var client = Server.CreateClient(Server.ApiKey);
        client.DefaultRequestHeaders.ExpectContinue = true;
        await AssertRefusedAsync(LoraForms.Create(Enumerable.Range(0, 11).Select(i => new byte[10 * 1024 * 1024 - i])), 413, "payload_too_large", client);
    }

    [Theory]
    [InlineData("name", "", "name")]
    [InlineData("name", "0123456789012345678901234567890123456789012345678901234567890", "name")]
    [InlineData("subjectKind", "animal", "subjectKind")]
    [InlineData("steps", "3001", "steps")]
    [InlineData("steps", "many", "steps")]
    [InlineData("loraRank", "7", "loraRank")]
    [InlineData("loraRank", "65", "loraRank")]
    [InlineData("webhookEvents", "completed,started", "webhookEvents")]
    [InlineData("metadata", "[1,2]", "metadata")]
    [InlineData("metadata", "{\"a\":1}", "metadata")]
    [InlineData("metadata", "{\"a\":\"1\",\"a\":\"2\"}", "metadata")]
    [InlineData("metadata", "{\"a\":\"\\ud800\"}", "metadata")]
    [InlineData("age", "01234567890123456789012345678901234567890", "age")]
    public Task Refuses_an_invalid_field(string field, string value, string errorKey) =>
        AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15), new Dictionary<string, string> { [field] = value }), 400, "validation_failed", field: errorKey);

    [Theory]
    [InlineData("name")]
    [InlineData("metadata")]
    public Task Refuses_a_field_too_long_to_keep_as_a_validation_error(string field) =>
        AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15), new Dictionary<string, string> { [field] = new string('a', 70_000) }),
            400, "validation_failed", field: field);

    [Fact]
    public Task Refuses_a_person_without_gender_and_ethnicity() =>
        AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15), new Dictionary<string, string> { ["subjectKind"] = "person" }),
            400, "validation_failed", field: "gender");

    [Fact]
    public Task Refuses_more_than_16_metadata_keys() =>
        AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15), new Dictionary<string, string>
        {
            ["metadata"] = "{" + string.Join(",", Enumerable.Range(0, 17).Select(i => $"\"k{i}\":\"v\"")) + "}",
        }), 400, "validation_failed", field: "metadata");

    [Fact]
    public Task Refuses_a_webhook_url_that_is_not_http() =>
        AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15), new Dictionary<string, string> { ["webhookUrl"] = "ftp://example.com/hook" }),
            400, "webhook_url_not_allowed");

    [Fact]
    public async Task Refuses_without_credits_with_402()
    {
        var poor = await Server.WithDb(db => Core.Teams.TeamAdmin.CreateTeamAsync(db, "poor-" + Guid.NewGuid().ToString("N")[..6], 1, 10, TimeProvider.System, default));
        await AssertRefusedAsync(LoraForms.Create(TestImages.Pngs(15)), 402, "insufficient_credits", Server.CreateClient(poor.ApiKey));
    }

    [Fact]
    public async Task Checks_auth_before_body_size_and_fields()
    {
        var response = await Server.CreateClient(null).PostAsync("/v2/loras", new StringContent("garbage"));
        await Problem.AssertAsync(response, 401, "unauthorized");
    }

    /// <summary>A PNG whose IHDR claims a size, with no pixel data behind it.</summary>
    private static byte[] PngWithHeaderSize(int width, int height)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
        var chunk = new List<byte>();
        var lengthBytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(lengthBytes, 13);
        chunk.AddRange(lengthBytes);
        var typeAndData = Encoding.ASCII.GetBytes("IHDR").Concat(ihdr).ToArray();
        chunk.AddRange(typeAndData);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typeAndData));
        chunk.AddRange(crc);
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, .. chunk];
    }

    private static uint Crc32(byte[] data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }
}
