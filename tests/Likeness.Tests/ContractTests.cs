using System.Diagnostics;
using System.Text.Json;
using Likeness.Api;
using Likeness.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Likeness.Tests;

/// <summary>The typed contract: the OpenAPI document states every operation's results, and a client generated from it works.</summary>
public sealed class ContractTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private LikenessServer Server => fixture.Server;

    [Fact]
    public async Task Every_operation_declares_its_success_schema_and_its_problems()
    {
        var document = JsonDocument.Parse(await Server.CreateClient(null).GetStringAsync("/openapi/v1.json")).RootElement;
        var schemas = document.GetProperty("components").GetProperty("schemas");
        var problem = schemas.GetProperty("ProblemDetails").GetProperty("properties");
        foreach (var member in new[] { "type", "title", "status", "detail", "code", "traceId", "errors" })
            Assert.True(problem.TryGetProperty(member, out _), $"ProblemDetails lacks '{member}'");

        var operations = 0;
        foreach (var path in document.GetProperty("paths").EnumerateObject())
        foreach (var op in path.Value.EnumerateObject())
        {
            operations++;
            var name = $"{op.Name.ToUpperInvariant()} {path.Name}";
            Assert.True(op.Value.TryGetProperty("operationId", out _), $"{name} has no operationId");
            var responses = op.Value.GetProperty("responses").EnumerateObject().ToList();
            var success = responses.Where(r => r.Name.StartsWith('2')).ToList();
            Assert.True(success.Count > 0, $"{name} declares no 2xx response");
            foreach (var ok in success)
            {
                Assert.True(ok.Value.TryGetProperty("content", out var content), $"{name} {ok.Name} has no body");
                foreach (var media in content.EnumerateObject())
                    Assert.True(media.Value.TryGetProperty("schema", out _), $"{name} {ok.Name} {media.Name} has no schema");
            }

            var problems = responses.Where(r => r.Name[0] is '4' or '5').ToList();
            Assert.True(problems.Count > 0, $"{name} declares no problem response");
            foreach (var refusal in problems)
            {
                var media = refusal.Value.GetProperty("content").GetProperty("application/problem+json");
                Assert.Equal("#/components/schemas/ProblemDetails", media.GetProperty("schema").GetProperty("$ref").GetString());
                var examples = media.GetProperty("examples").EnumerateObject().ToList();
                Assert.True(examples.Count > 0, $"{name} {refusal.Name} has no example");
                foreach (var example in examples)
                {
                    Assert.Equal(example.Name, example.Value.GetProperty("value").GetProperty("code").GetString());
                    Assert.Equal(int.Parse(refusal.Name), example.Value.GetProperty("value").GetProperty("status").GetInt32());
                }
            }
            // Only the signed file links work without a key; every other operation says it may answer 401.
            if (!path.Name.StartsWith("/v2/files/", StringComparison.Ordinal))
            {
                Assert.Contains(problems, r => r.Name == "401");
                Assert.True(op.Value.TryGetProperty("security", out _), $"{name} states no security");
            }
        }
        Assert.True(operations >= 13, $"only {operations} operations");

        // Query parameters the handlers read as text are documented as what they accept.
        var listParameters = document.GetProperty("paths").GetProperty("/v2/loras").GetProperty("get").GetProperty("parameters").EnumerateArray()
            .ToDictionary(p => p.GetProperty("name").GetString()!, p => p.GetProperty("schema"));
        Assert.Equal("integer", listParameters["limit"].GetProperty("type").GetString());
        Assert.Equal(100, listParameters["limit"].GetProperty("maximum").GetInt32());
        Assert.Equal("boolean", listParameters["includeArchived"].GetProperty("type").GetString());
        Assert.Contains("READY", listParameters["status"].GetProperty("enum").EnumerateArray().Select(e => e.GetString()));

        // The upload is multipart/form-data with the form's every field and the repeated 'images' part.
        JsonElement BodySchema(string path, string contentType) => Resolve(document.GetProperty("paths").GetProperty(path).GetProperty("post")
            .GetProperty("requestBody").GetProperty("content").GetProperty(contentType).GetProperty("schema"));
        JsonElement Resolve(JsonElement schema) =>
            schema.TryGetProperty("$ref", out var r) ? schemas.GetProperty(r.GetString()!.Split('/')[^1]) : schema;
        var form = BodySchema("/v2/loras", "multipart/form-data");
        var fields = form.GetProperty("properties").EnumerateObject().Select(p => p.Name).Order().ToList();
        Assert.Equal(LoraForm.Fields.Append(LoraFormFields.ImagesField).Order(), fields);
        var images = form.GetProperty("properties").GetProperty("images");
        Assert.Equal("binary", images.GetProperty("items").GetProperty("format").GetString());
        Assert.Equal(15, images.GetProperty("minItems").GetInt32());
        Assert.Contains("images", form.GetProperty("required").EnumerateArray().Select(e => e.GetString()));

        // The generation's JSON body, and examples of the main records.
        var generate = BodySchema("/v2/images/generate", "application/json");
        Assert.True(generate.TryGetProperty("examples", out _), "the generate body has no example");
        var parameters = Resolve(generate.GetProperty("properties").GetProperty("fluxLoraParams"));
        Assert.Contains("3:4", parameters.GetProperty("properties").GetProperty("aspect_ratio").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        foreach (var record in new[] { "LoraResponse", "LoraCreated", "GenerationResponse", "TeamResponse" })
            Assert.True(schemas.GetProperty(record).TryGetProperty("examples", out _), $"{record} has no example");
    }

    [Fact]
    public async Task A_client_generated_from_the_document_drives_the_main_loop()
    {
        var watch = Stopwatch.StartNew();
        var generated = await GeneratedClient.FromDocumentAsync(await Server.CreateClient(null).GetStringAsync("/openapi/v1.json"));
        output.WriteLine($"client generated and compiled in {watch.ElapsedMilliseconds} ms");
        using var http = Server.CreateClient(Server.ApiKey);
        var client = generated.New("LikenessClient", http);
        var creditsBefore = (long)(await client.GetTeamAsync()).Credits;

        var pngs = TestImages.Pngs(15, seed: 700);
        dynamic photos = Array.CreateInstance(generated.Type("FileParameter"), pngs.Count);
        for (var i = 0; i < pngs.Count; i++) photos[i] = generated.New("FileParameter", new MemoryStream(pngs[i]), $"photo{i}.png", "image/png");
        var created = await client.CreateLoraAsync("Generated client", generated.Enum("SubjectKind", "Object"), null, null, null, LikenessServer.TestMinSteps, 8,
            null, null, "{\"via\":\"nswag\"}", photos);
        Assert.Equal("PENDING", (string)created.Status);
        Assert.Equal(15, (int)created.ImageCount);

        var deadline = DateTime.UtcNow.AddMinutes(3);
        var lora = await client.GetLoraAsync((string)created.Id);
        while (lora.Status.ToString() is not ("READY" or "FAILED") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
            lora = await client.GetLoraAsync((string)created.Id);
        }
        Assert.Equal("READY", lora.Status.ToString());
        Assert.Matches("^[A-Z]{5}$", (string)lora.TriggerWord);
        Assert.Equal("nswag", (string)lora.Metadata["via"]);
        output.WriteLine($"READY after {watch.ElapsedMilliseconds} ms");

        var body = generated.New("GenerateBody");
        body.Model = generated.Enum("GenerateBodyModel", "FluxLora");
        body.Prompt = "a portrait on a beach";
        body.FluxLoraParams.LoraId = (string)created.Id;
        body.FluxLoraParams.Num_inference_steps = 4;
        body.FluxLoraParams.Output_format = generated.Enum("FluxLoraParamsOutput_format", "Webp");
        body.FluxLoraParams.Seed = 7L;
        var generation = await client.GenerateImagesAsync(body);
        Assert.Equal("COMPLETED", generation.Status.ToString());
        var image = Assert.Single((IEnumerable<dynamic>)generation.Images);
        Assert.Equal("image/webp", (string)image.ContentType);
        Assert.Equal(7L, (long)image.Seed);
        Assert.StartsWith("RIFF", System.Text.Encoding.ASCII.GetString((await Server.CreateClient(null).GetByteArrayAsync((string)image.Url))[..4]));

        var team = await client.GetTeamAsync();
        Assert.Equal(creditsBefore - 257 - 2, (long)team.Credits);
        var listed = await client.ListLorasAsync(null, 5, false, generated.Enum("Status", "READY"));
        Assert.Contains((IEnumerable<dynamic>)listed.Items, l => (string)l.Id == (string)created.Id);

        // A refusal arrives as the generator's typed exception carrying the problem, code included.
        var missing = await Assert.ThrowsAnyAsync<Exception>(() => (Task)client.GetLoraAsync("lora_" + new string('0', 26)));
        dynamic problem = missing;
        Assert.Equal(404, (int)problem.StatusCode);
        Assert.Equal("not_found", (string)problem.Result.Code);
        Assert.Equal("The LoRA was not found.", (string)problem.Result.Detail);
        output.WriteLine($"whole loop in {watch.ElapsedMilliseconds} ms");
    }
}
