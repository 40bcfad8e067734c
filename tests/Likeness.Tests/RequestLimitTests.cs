using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>Issue #11's weak spots at the edge of the server: over-long URLs, oversized headers, stalled uploads.</summary>
public sealed class RequestLimitTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LikenessServer Server => fixture.Server;

    [Fact]
    public async Task Refuses_an_over_long_url_with_problem_json()
    {
        var response = await Server.Client.GetAsync("/v2/loras/lora_" + new string('a', 9000));
        await Problem.AssertAsync(response, 414, "uri_too_long");
        // Without a key too: the limit comes before authentication, as Kestrel's own would.
        using var anonymous = Server.CreateClient(apiKey: null);
        await Problem.AssertAsync(await anonymous.GetAsync("/v2/loras?cursor=" + new string('x', 9000)), 414, "uri_too_long");
    }

    [Fact]
    public async Task Refuses_oversized_headers_with_problem_json()
    {
        using var big = new HttpRequestMessage(HttpMethod.Get, "/v2/team");
        big.Headers.Add("X-Padding", new string('p', 40_000));
        await Problem.AssertAsync(await Server.Client.SendAsync(big), 431, "headers_too_large");

        using var many = new HttpRequestMessage(HttpMethod.Get, "/v2/team");
        for (var i = 0; i < 150; i++) many.Headers.Add($"X-Field-{i}", "v");
        await Problem.AssertAsync(await Server.Client.SendAsync(many), 431, "headers_too_large");

        // A large but ordinary header (a 10 KB cookie) still passes.
        using var cookie = new HttpRequestMessage(HttpMethod.Get, "/v2/team");
        cookie.Headers.Add("Cookie", "session=" + new string('c', 10_000));
        Assert.True((await Server.Client.SendAsync(cookie)).IsSuccessStatusCode);
    }

    [Fact]
    public async Task Refuses_a_png_with_a_huge_metadata_chunk_and_stores_nothing()
    {
        var credits = await Server.CreditsAsync();
        var images = TestImages.Pngs(15, seed: 700);
        var text = new byte[3 * 1024 * 1024];
        "Comment\0"u8.CopyTo(text);
        images[4] = [.. images[4][..33], .. Chunk("tEXt", text), .. images[4][33..]];
        var response = await Server.Client.PostAsync("/v2/loras", LoraForms.Create(images));
        await Problem.AssertAsync(response, 400, "image_metadata_too_large");
        Assert.Equal(credits, await Server.CreditsAsync());
        Assert.Empty(Directory.GetDirectories(Path.Combine(Server.DataFolder, "staging")));
    }

    [Fact]
    public async Task Cuts_off_a_stalled_upload_with_408_and_stores_nothing()
    {
        await using var server = await LikenessServer.StartAsync(new Dictionary<string, string?>
        {
            ["Likeness:Limits:MinUploadBytesPerSecond"] = "4096",
            ["Likeness:Limits:MinUploadRateGrace"] = "00:00:02",
        });
        var credits = await server.CreditsAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
        var stream = tcp.GetStream();
        const string boundary = "stalled-boundary";
        var start = new StringBuilder()
            .Append("POST /v2/loras HTTP/1.1\r\n").Append($"Host: {server.BaseAddress.Authority}\r\n")
            .Append($"X-API-Key: {server.ApiKey}\r\n").Append($"Content-Type: multipart/form-data; boundary={boundary}\r\n")
            .Append("Content-Length: 20000000\r\n\r\n")
            .Append($"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nstalled\r\n")
            .Append($"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(start.ToString()));
        await stream.WriteAsync(TestImages.Png(1, 256, 256).AsMemory(0, 2000));
        await stream.FlushAsync();

        // Then nothing more: the server must cut the request off on its own.
        var clock = Stopwatch.StartNew();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var answer = new MemoryStream();
        var buffer = new byte[8192];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0) answer.Write(buffer, 0, n);
        }
        catch (IOException) { } // a reset after the answer is a cut-off too
        var text = Encoding.UTF8.GetString(answer.ToArray());
        Assert.False(timeout.IsCancellationRequested, $"the stalled upload was still open after {clock.Elapsed.TotalSeconds:F0} s");
        Assert.StartsWith("HTTP/1.1 408", text);
        Assert.Contains("application/problem+json", text);
        Assert.Contains("\"code\":\"request_timeout\"", text);

        Assert.Equal(credits, await server.CreditsAsync());
        Assert.Equal(0, (await server.GetJsonAsync("/v2/loras")).GetProperty("items").GetArrayLength());
        Assert.Empty(Directory.GetDirectories(Path.Combine(server.DataFolder, "staging")));
    }

    private static byte[] Chunk(string type, byte[] data)
    {
        var chunk = new byte[12 + data.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(chunk, 4);
        data.CopyTo(chunk, 8);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Core.Media.ImageHeader.Crc32(chunk.AsSpan(4, 4 + data.Length)));
        return chunk;
    }
}
