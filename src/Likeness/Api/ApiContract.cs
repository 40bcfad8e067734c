using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Likeness.Api;

/// <summary>The problem codes an endpoint answers with one status: documented as examples of its problem+json response.</summary>
public sealed record ProblemCodes(int Status, string[] Codes);

/// <summary>
/// The request body an endpoint reads by itself, for the document only: <c>Accepts</c> would also make routing refuse other
/// content types with a bare 415, where the endpoint answers a problem with its own code (<c>malformed_multipart</c>…).
/// </summary>
public sealed record DocumentedBody(Type Type, string ContentType);

/// <summary>
/// The typed contract: <c>/openapi/v1.json</c> carries every request and response schema, status code and problem code,
/// with examples, so that a generated client (Kiota, NSwag) and <c>likeness loras …</c> speak the same records.
/// </summary>
public static class ApiContract
{
    public const string ProblemJson = "application/problem+json";
    public const string ApiKeyScheme = "ApiKey";
    public const string BearerScheme = "Bearer";

    /// <summary>Documents the request body as <typeparamref name="T"/> in <paramref name="contentType"/>.</summary>
    public static RouteHandlerBuilder Reads<T>(this RouteHandlerBuilder builder, string contentType) =>
        builder.WithMetadata(new DocumentedBody(typeof(T), contentType));

    /// <summary>Declares a refusal: a problem+json response with this status, and the codes it may carry.</summary>
    public static TBuilder Refuses<TBuilder>(this TBuilder builder, int status, params string[] codes) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new ProducesResponseTypeMetadata(status, typeof(ProblemDetails), [ProblemJson]), new ProblemCodes(status, codes));

    public static IServiceCollection AddLikenessOpenApi(this IServiceCollection services) => services.AddOpenApi(o =>
    {
        o.AddDocumentTransformer(Describe);
        o.AddSchemaTransformer(ExtendSchema);
        o.AddOperationTransformer(DocumentOperation);
    });

    private static Task Describe(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken ct)
    {
        document.Info = new OpenApiInfo
        {
            Title = "Likeness API",
            Version = "v2",
            Description = "Train personal FLUX.1 LoRAs from 15–30 photos and generate photos of the subject. " +
                "Every refusal is application/problem+json (RFC 9457) with a stable machine `code` and a `traceId`.",
        };
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[ApiKeyScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = "X-API-Key", Description = "The team's API key.",
        };
        document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http, Scheme = "bearer", Description = "The team's API key as a bearer token.",
        };
        return Task.CompletedTask;
    }

    /// <summary>Our problems carry more than RFC 9457's members: the schema says so, so that clients read them typed.</summary>
    private static Task ExtendSchema(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken ct)
    {
        var type = context.JsonTypeInfo.Type;
        if (type == typeof(DateTime) || type == typeof(DateTime?))
        {
            // Written by our own converter, which hides the type from the schema exporter.
            schema.Type = type == typeof(DateTime) ? JsonSchemaType.String : JsonSchemaType.String | JsonSchemaType.Null;
            schema.Format = "date-time";
            return Task.CompletedTask;
        }
        if (type == typeof(JsonObject)) schema.AdditionalProperties = new OpenApiSchema { Type = JsonSchemaType.String };
        if (type == typeof(ProblemDetails))
        {
            schema.Properties ??= new Dictionary<string, IOpenApiSchema>();
            schema.Properties["code"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "Stable machine code (see the response's examples)." };
            schema.Properties["traceId"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "Quote it when reporting a problem." };
            schema.Properties["errors"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Object | JsonSchemaType.Null,
                Description = "validation_failed: each invalid field with its messages.",
                AdditionalProperties = new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } },
            };
            schema.Required = new HashSet<string> { "type", "title", "status", "detail", "code", "traceId" };
        }
        if (type == typeof(LoraFormFields))
        {
            // The form's files are parts of their own: the repeated 'images' part, 15–30 photos.
            schema.Properties ??= new Dictionary<string, IOpenApiSchema>();
            schema.Properties[LoraFormFields.ImagesField] = new OpenApiSchema
            {
                Type = JsonSchemaType.Array, MinItems = 15, MaxItems = 30,
                Description = "15–30 photos, jpg / png / webp judged by content, each ≤ 10 MiB and ≥ 64 px on its shortest side, no two identical.",
                Items = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" },
            };
            schema.Required = new HashSet<string> { LoraFormFields.ImagesField, "name" };
            OneOf(schema, "subjectKind", LoraForm.SubjectKinds);
            OneOf(schema, "gender", LoraForm.Genders);
        }
        else if (type == typeof(LoraResponse)) OneOf(schema, "status", Core.Data.LoraStatus.All);
        else if (type == typeof(GenerationResponse)) OneOf(schema, "status",
            [Core.Data.GenerationStatus.Pending, Core.Data.GenerationStatus.Running, Core.Data.GenerationStatus.Completed, Core.Data.GenerationStatus.Failed]);
        else if (type == typeof(GenerateBody)) OneOf(schema, "model", [GenerateRequest.Model]);
        else if (type == typeof(FluxLoraParams))
        {
            OneOf(schema, "aspect_ratio", Core.Generations.AspectRatios.All);
            OneOf(schema, "output_format", GenerateRequest.Formats);
        }
        if (type != typeof(ProblemDetails) && ApiExamples.For(type) is { } example)
        {
            schema.Examples = [JsonSerializer.SerializeToNode(example, type, ApiJson.Options)!];
        }
        return Task.CompletedTask;
    }

    private static void OneOf(OpenApiSchema schema, string property, IEnumerable<string> values)
    {
        if (schema.Properties is not null && schema.Properties.TryGetValue(property, out var s) && s is OpenApiSchema p) p.Enum = values.Select(v => (JsonNode)JsonValue.Create(v)).ToList();
    }

    /// <summary>
    /// The query parameters the handlers bind as text, to answer a bad value with their own problem: the document states
    /// what they accept. A name means the same thing on every operation.
    /// </summary>
    private static readonly Dictionary<string, Func<OpenApiSchema>> QuerySchemas = new()
    {
        ["limit"] = () => new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Minimum = "1", Maximum = "100", Default = 24 },
        ["includeArchived"] = () => new OpenApiSchema { Type = JsonSchemaType.Boolean, Default = false },
        ["purge"] = () => new OpenApiSchema { Type = JsonSchemaType.Boolean, Default = false },
        ["status"] = () => new OpenApiSchema { Type = JsonSchemaType.String, Enum = [.. Core.Data.LoraStatus.All.Select(v => (JsonNode)v)] },
        ["format"] = () => new OpenApiSchema { Type = JsonSchemaType.String, Enum = ["native", "peft", "diffusers", "kohya"], Default = "native" },
    };

    private static async Task DocumentOperation(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        foreach (var parameter in operation.Parameters?.OfType<OpenApiParameter>() ?? [])
            if (parameter.In == ParameterLocation.Query && QuerySchemas.TryGetValue(parameter.Name!, out var schema)) parameter.Schema = schema();
        if (metadata.OfType<DocumentedBody>().LastOrDefault() is { } body && context.Document is { } document)
        {
            // A named component, as Accepts would make it, so that generated clients name the type after the record.
            document.AddComponent(body.Type.Name, await context.GetOrCreateSchemaAsync(body.Type, cancellationToken: ct));
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    [body.ContentType] = new() { Schema = new OpenApiSchemaReference(body.Type.Name, document) },
                },
            };
        }

        foreach (var refusal in metadata.OfType<ProblemCodes>())
        {
            if (operation.Responses is null ||
                !operation.Responses.TryGetValue(refusal.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), out var found) ||
                found is not OpenApiResponse response || response.Content is null ||
                !response.Content.TryGetValue(ProblemJson, out var content) || content is not OpenApiMediaType media)
                continue;
            response.Description = $"{Problems.TitleFor(refusal.Codes[0])}: code {string.Join(", ", refusal.Codes.Select(c => $"`{c}`"))}.";
            media.Examples = refusal.Codes.ToDictionary(c => c, c => (IOpenApiExample)new OpenApiExample
            {
                Summary = Problems.TitleFor(c),
                Value = new JsonObject
                {
                    ["type"] = Problems.TypeFor(c), ["title"] = Problems.TitleFor(c), ["status"] = refusal.Status,
                    ["detail"] = ApiExamples.Detail(c), ["code"] = c, ["traceId"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                },
            });
        }

        // Every endpoint but the signed file links needs a key.
        if (metadata.OfType<ProblemCodes>().Any(p => p.Codes.Contains("unauthorized")))
            operation.Security =
            [
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, context.Document)] = [] },
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, context.Document)] = [] },
            ];
    }
}
