using System.Text.Json;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace Likeness.Api;

/// <summary>A successful JSON response that can be stored for idempotent replay.</summary>
public sealed class JsonResponse(int statusCode, object body, string? location = null, IDictionary<string, string>? headers = null) : IResult, IStatusCodeHttpResult
{
    public int? StatusCode => statusCode;
    public object Body => body;
    public string? Location => location;

    public string Serialize(JsonSerializerOptions options) => JsonSerializer.Serialize(body, body.GetType(), options);

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var options = httpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        httpContext.Response.StatusCode = statusCode;
        if (location is not null) httpContext.Response.Headers.Location = location;
        if (headers is not null) foreach (var (k, v) in headers) httpContext.Response.Headers[k] = v;
        httpContext.Response.ContentType = "application/json; charset=utf-8";
        await httpContext.Response.WriteAsync(Serialize(options));
    }
}
