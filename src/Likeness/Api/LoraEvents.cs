using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;

namespace Likeness.Api;

/// <summary>How the LoRA event stream watches the database and keeps idle connections alive (section <c>Likeness:Events</c>).</summary>
public sealed class LoraEventOptions
{
    public const string Section = "Likeness:Events";

    /// <summary>How often an open stream reads its LoRA. The database is the one place every node sees a worker's progress.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>A comment line after this long without an event, so that proxies and clients do not take the stream for dead.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// <c>GET /v2/loras/{id}/events</c>: the LoRA as Server-Sent Events. Each <c>lora</c> event's data is the LoRA object of
/// <c>GET /v2/loras/{id}</c>, sent at once and again whenever it changes; the stream ends after a terminal state
/// (READY, FAILED, ARCHIVED). Authenticated like every <c>/v2</c> route, by header only: a key in a URL ends up in logs.
/// </summary>
public static class LoraEvents
{
    public static RouteHandlerBuilder MapLoraEvents(this IEndpointRouteBuilder group) =>
        group.MapGet("/{id}/events", Stream).WithName("StreamLoraEvents")
            .WithSummary("The LoRA as Server-Sent Events (text/event-stream): its JSON at once and at every change, a heartbeat comment every 15 s; ends after READY, FAILED or ARCHIVED.")
            .Refuses(400, "invalid_id").Refuses(404, "not_found");

    private static async Task<Results<LoraEventStream, ProblemHttpResult>> Stream(HttpContext http, HotReads reads, string id)
    {
        if (!Ids.IsLoraId(id)) return Problems.InvalidId(id);
        var teamId = http.Caller().TeamId;
        if (await reads.TeamLoraAsync(id, teamId, http.RequestAborted) is null) return Problems.NotFound("The LoRA");
        return new LoraEventStream(id, teamId);
    }
}

/// <summary>Writes the stream until the LoRA reaches a terminal state or the client goes away.</summary>
public sealed class LoraEventStream(string loraId, string teamId) : IResult, IEndpointMetadataProvider
{
    public const string ContentType = "text/event-stream";
    private static readonly byte[] Heartbeat = ": heartbeat\n\n"u8.ToArray();

    public async Task ExecuteAsync(HttpContext http)
    {
        var services = http.RequestServices;
        // Each read rents a connection from HotReads and gives it back, so a stream open for a whole training holds
        // no connection or EF context between reads.
        var reads = services.GetRequiredService<HotReads>();
        var settings = services.GetRequiredService<IOptions<LoraEventOptions>>().Value;
        var json = services.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        var time = services.GetRequiredService<TimeProvider>();
        var ct = http.RequestAborted;

        http.Features.GetRequiredFeature<IHttpResponseBodyFeature>().DisableBuffering();
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = ContentType;
        http.Response.Headers.CacheControl = "no-cache";
        // nginx and its kin would otherwise hold the events back until their buffer fills.
        http.Response.Headers["X-Accel-Buffering"] = "no";
        await http.Response.Body.FlushAsync(ct);

        string? last = null;
        var sent = 0;
        var quietSince = time.GetTimestamp();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var lora = await reads.TeamLoraAsync(loraId, teamId, ct);
                if (lora is null) return; // purged from under the stream; a GET now answers 404
                var body = JsonSerializer.Serialize(LoraResponse.From(lora), json);
                if (body != last)
                {
                    last = body;
                    await http.Response.Body.WriteAsync(Encoding.UTF8.GetBytes($"id: {++sent}\nevent: lora\ndata: {body}\n\n"), ct);
                    await http.Response.Body.FlushAsync(ct);
                    quietSince = time.GetTimestamp();
                    if (!LoraStatus.IsActive(lora.Status)) return; // READY, FAILED or ARCHIVED
                }
                else if (time.GetElapsedTime(quietSince) >= settings.HeartbeatInterval)
                {
                    await http.Response.Body.WriteAsync(Heartbeat, ct);
                    await http.Response.Body.FlushAsync(ct);
                    quietSince = time.GetTimestamp();
                }
                await Task.Delay(settings.PollInterval, time, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client hung up: nothing more to say.
        }
    }

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder)
    {
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(LoraResponse), [ContentType]));
    }
}
