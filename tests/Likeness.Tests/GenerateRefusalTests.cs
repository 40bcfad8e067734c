using System.Net.Http.Json;
using System.Text;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>Refusals of POST /v2/images/generate: the right code for each field, nothing charged.</summary>
public sealed class GenerateRefusalTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string MissingLora = "lora_00000000000000000000000000";
    private LikenessServer Server => fixture.Server;

    public static TheoryData<string, int, string> Bodies => new()
    {
        { """{"model":"sdxl","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000"}}""", 400, "unsupported_model" },
        { """{"prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000"}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"","fluxLoraParams":{"loraId":"lora_00000000000000000000000000"}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x"}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"nope"}}""", 400, "invalid_id" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","num_outputs":5}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","num_outputs":0}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","aspect_ratio":"5:4"}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","output_format":"gif"}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","lora_strength":1.6}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","guidance_scale":0.5}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","num_inference_steps":3}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","num_inference_steps":51}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","seed":-1}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000","seed":"abc"}}""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"\ud800","fluxLoraParams":{"loraId":"lora_00000000000000000000000000"}}""", 400, "validation_failed" },
        { """not json""", 400, "validation_failed" },
        { """[1,2,3]""", 400, "validation_failed" },
        { """{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"lora_00000000000000000000000000"}}""", 404, "not_found" },
    };

    [Theory]
    [MemberData(nameof(Bodies))]
    public async Task Refuses_a_bad_request_and_charges_nothing(string body, int status, string code)
    {
        var before = await Server.CreditsAsync();
        var response = await Server.Client.PostAsync("/v2/images/generate", new StringContent(body, Encoding.UTF8, "application/json"));
        await Problem.AssertAsync(response, status, code);
        Assert.Equal(before, await Server.CreditsAsync());
    }

    [Fact]
    public async Task Refuses_invalid_utf8_inside_a_string_as_a_validation_error()
    {
        var before = await Server.CreditsAsync();
        byte[] body = [.. Encoding.UTF8.GetBytes("{\"model\":\"flux-lora\",\"prompt\":\"a "), 0xC3, 0x28, 0xFF,
            .. Encoding.UTF8.GetBytes($"\",\"fluxLoraParams\":{{\"loraId\":\"{MissingLora}\"}}}}")];
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var problem = await Problem.AssertAsync(await Server.Client.PostAsync("/v2/images/generate", content), 400, "validation_failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("body", out _), problem.ToString());
        Assert.Equal(before, await Server.CreditsAsync());
    }

    [Fact]
    public async Task Refuses_a_prompt_over_2000_characters()
    {
        var response = await Server.Client.PostAsJsonAsync("/v2/images/generate",
            new { model = "flux-lora", prompt = new string('a', 2001), fluxLoraParams = new { loraId = MissingLora } });
        var problem = await Problem.AssertAsync(response, 400, "validation_failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("prompt", out _));
    }

    [Fact]
    public async Task Refuses_an_idempotency_key_over_255_characters()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/images/generate")
        {
            Content = JsonContent.Create(new { model = "flux-lora", prompt = "x", fluxLoraParams = new { loraId = MissingLora } }),
        };
        request.Headers.Add("Idempotency-Key", new string('k', 256));
        await Problem.AssertAsync(await Server.Client.SendAsync(request), 400, "validation_failed");
    }

    [Fact]
    public async Task Refuses_a_forged_or_expired_file_link()
    {
        using var anonymous = Server.CreateClient(null);
        await Problem.AssertAsync(await anonymous.GetAsync("/v2/files/generations/img_x/0.png?exp=9999999999&sig=AAAA"), 403, "link_invalid");
        await Problem.AssertAsync(await anonymous.GetAsync("/v2/files/generations/img_x/0.png"), 403, "link_invalid");
        var links = Server.App.Services.GetRequiredService<Api.FileLinks>();
        var valid = new Uri(links.Url("generations/img_x/0.png"));
        var tampered = valid.PathAndQuery.Replace("exp=", "exp=1"); // another expiry breaks the signature
        await Problem.AssertAsync(await anonymous.GetAsync(tampered), 403, "link_invalid");
        var expired = new Uri(links.Url("generations/img_x/0.png", DateTimeOffset.UtcNow.AddMinutes(-1)));
        await Problem.AssertAsync(await anonymous.GetAsync(expired.PathAndQuery), 403, "link_expired");
    }

    [Fact]
    public async Task Serves_the_openapi_document_and_health()
    {
        using var anonymous = Server.CreateClient(null);
        var health = await anonymous.GetAsync("/health");
        Assert.True(health.IsSuccessStatusCode);
        var openapi = await anonymous.GetStringAsync("/openapi/v1.json");
        Assert.Contains("/v2/loras", openapi);
        Assert.Contains("/v2/images/generate", openapi);
        Assert.True((await anonymous.GetAsync("/docs")).IsSuccessStatusCode);
        using var noRedirects = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = anonymous.BaseAddress };
        var root = await noRedirects.GetAsync("/");
        Assert.Equal(System.Net.HttpStatusCode.Redirect, root.StatusCode);
        Assert.Equal("/app", root.Headers.Location?.OriginalString);
    }
}
