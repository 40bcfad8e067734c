using Likeness.Core.Blobs;
using Likeness.Core.Captioning;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Datasets;
using Likeness.Core.Loras;
using Likeness.Core.Media;
using Likeness.Core.Ports;
using Likeness.Core.Storage;
using Likeness.Core.Webhooks;
using Likeness.Engine;
using Likeness.Engine.Lora;
using Likeness.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Likeness.Api;

public static class LoraEndpoints
{
    public static RouteGroupBuilder MapLoras(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v2/loras").WithTags("LoRAs").Refuses(401, "unauthorized");
        group.MapPost("/", Create).DisableAntiforgery().WithName("CreateLora")
            .WithSummary("Start a training from 15–30 photos (multipart/form-data).")
            .Reads<LoraFormFields>("multipart/form-data")
            .Produces<LoraCreated>(StatusCodes.Status202Accepted)
            .Refuses(400, "validation_failed", "malformed_multipart", "too_few_images", "too_many_images", MediaCodes.TooLarge, MediaCodes.Unsupported,
                MediaCodes.TooSmall, MediaCodes.TooManyPixels, MediaCodes.MetadataTooLarge, "duplicate_image", "webhook_url_not_allowed")
            .Refuses(402, "insufficient_credits")
            .Refuses(408, RequestLimits.RequestTimeout)
            .Refuses(409, "idempotency_in_progress")
            .Refuses(413, "payload_too_large")
            .Refuses(422, "idempotency_key_reused")
            .Refuses(429, "concurrency_limit")
            .Refuses(507, "insufficient_storage");
        group.MapGet("/", List).WithName("ListLoras").WithSummary("The team's LoRAs, newest first.")
            .Refuses(400, "validation_failed", "invalid_cursor");
        group.MapGet("/{id}", Get).WithName("GetLora").WithSummary("One LoRA (poll it for status).")
            .Produces<LoraResponse>().Refuses(400, "invalid_id").Refuses(404, "not_found");
        group.MapDelete("/{id}", Archive).WithName("ArchiveLora")
            .WithSummary("Soft-archive; with purge=true also erase its photos, dataset, adapter and images.")
            .Refuses(400, "invalid_id", "validation_failed").Refuses(404, "not_found");
        group.MapPost("/{id}/cancel", Cancel).WithName("CancelLora").WithSummary("Cancel a training before it is READY (full refund).")
            .Produces<LoraResponse>().Refuses(400, "invalid_id").Refuses(404, "not_found").Refuses(409, "not_cancellable");
        group.MapGet("/{id}/weights", Weights).WithName("GetLoraWeights").WithSummary("Download the adapter (safetensors).")
            .Produces<Stream>(contentType: "application/octet-stream")
            .Refuses(400, "invalid_id", "validation_failed").Refuses(404, "not_found").Refuses(409, "lora_not_ready");
        group.MapGet("/{id}/captions", Captions).WithName("ListLoraCaptions")
            .WithSummary("Each dataset photo's caption, the captioner it came from and its size, once the dataset is stored.")
            .Refuses(400, "invalid_id").Refuses(404, "not_found").Refuses(409, "lora_not_ready");
        group.MapGet("/{id}/webhook-deliveries", Deliveries).WithName("ListWebhookDeliveries")
            .WithSummary("Every webhook delivery attempt for this LoRA.")
            .Produces<Page<WebhookDeliveryResponse>>().Refuses(400, "invalid_id").Refuses(404, "not_found");
        group.MapLoraEvents();
        return group;
    }

    private static async Task<IResult> Create(HttpContext http, LikenessDb db, LoraCreation creation, Idempotency idempotency,
        WebhookTargetPolicy webhookPolicy, IOptions<LikenessOptions> options, ILoggerFactory logs)
    {
        var caller = http.Caller();
        var ct = http.RequestAborted;
        if (Idempotency.CheckKey(http.Request) is { } badKey) return badKey;

        LoraUpload upload;
        try { upload = await LoraUpload.ReadAsync(http.Request, options.Value.StagingFolder, ct); }
        catch (LoraUpload.TooLargeException)
        {
            http.Response.Headers.Connection = "close";
            return Problems.Of(413, "payload_too_large", "The request body is larger than 101 MiB (images may total at most 100 MiB).");
        }
        catch (LoraUpload.TooSlowException)
        {
            http.Response.Headers.Connection = "close";
            return Problems.Of(StatusCodes.Status408RequestTimeout, RequestLimits.RequestTimeout,
                "The upload arrived more slowly than the server's minimum rate and was cut off; nothing was stored.");
        }
        catch (LoraUpload.MalformedException ex) { return Problems.Of(400, "malformed_multipart", ex.Message); }
        catch (InsufficientStorageException) { return InsufficientStorage(http); }

        using (upload)
        {
            var (lora, errors) = LoraForm.Parse(upload.Fields, upload.OverlongFields, options.Value.Training.MinSteps);
            if (lora is null) return Problems.Validation(errors);

            var count = upload.Files.Count + upload.OversizedImages.Count;
            if (count < 15) return Problems.Of(400, "too_few_images", $"Upload at least 15 images in 'images' parts; got {count}.");
            if (count > 30) return Problems.Of(400, "too_many_images", $"Upload at most 30 images; got {count}.");
            if (upload.OversizedImages.Count > 0)
                return Problems.Of(400, "image_too_large", $"Each image may be at most 10 MiB; '{upload.OversizedImages[0]}' is larger.");
            if (upload.ImageBytes > LoraUpload.MaxImagesTotalBytes)
                return Problems.Of(400, "image_too_large", "The images together may be at most 100 MiB.");

            var photos = new List<StagedPhoto>();
            var seen = new Dictionary<string, (int Number, string Name)>();
            foreach (var (file, number) in upload.Files.Select((f, i) => (f, i + 1)))
            {
                if (seen.TryGetValue(file.Sha256Hex, out var first))
                    return Problems.Of(400, "duplicate_image",
                        $"Image {number} ('{file.FileName}') is identical to image {first.Number} ('{first.Name}'); upload each photo once.");
                seen[file.Sha256Hex] = (number, file.FileName);
                try
                {
                    var inspected = ImageInspector.Inspect(file.Path);
                    photos.Add(new StagedPhoto(file.Path, inspected.Format == "jpeg" ? "jpg" : inspected.Format));
                }
                catch (MediaValidationException ex)
                {
                    return Problems.Of(400, ex.Code, $"'{file.FileName}': {ex.Message}");
                }
            }

            if (lora.WebhookUrl is not null)
            {
                var verdict = await webhookPolicy.ValidateAsync(lora.WebhookUrl, ct);
                if (!verdict.Allowed) return Problems.Of(400, "webhook_url_not_allowed", verdict.Reason ?? "The webhook URL is not allowed.");
            }

            var fingerprint = Idempotency.Fingerprint("POST /v2/loras",
                upload.Fields.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}")
                    .Concat(upload.Files.Select(f => "image:" + f.Sha256Hex)));

            return await idempotency.RunAsync(http, caller.TeamId, "POST /v2/loras", fingerprint, async () =>
            {
                var result = await creation.CreateAsync(caller.TeamId, caller.KeyHash, lora, upload.Staging, photos, ct);
                return result.Outcome switch
                {
                    CreateOutcome.InsufficientCredits => Problems.Of(402, "insufficient_credits",
                        $"Starting a training costs {LoraLifecycle.CreateFee} credits now and {LoraLifecycle.TrainingFee} more when training starts; the team's balance is too low."),
                    CreateOutcome.ConcurrencyLimit => ConcurrencyLimit(http),
                    CreateOutcome.InsufficientStorage => InsufficientStorage(http),
                    _ => Created(result.Lora!),
                };
            }, async id => Created(await db.Loras.AsNoTracking().SingleAsync(l => l.Id == id, CancellationToken.None)));
        }
    }

    private static JsonResponse Created(Lora lora) =>
        new(StatusCodes.Status202Accepted, new LoraCreated(lora.Id, lora.Status, lora.ImageCount), location: $"/v2/loras/{lora.Id}");

    private static IResult ConcurrencyLimit(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "60";
        return Problems.Of(429, "concurrency_limit",
            "The team already has its maximum number of LoRAs in PENDING, UPLOADING or TRAINING; retry when one finishes.");
    }

    /// <summary>The server's storage is full: the client did nothing wrong, nothing was kept or charged, and a retry may succeed.</summary>
    private static ProblemHttpResult InsufficientStorage(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "300";
        return Problems.Of(507, "insufficient_storage",
            "The server has no room to store this upload right now; nothing was stored or charged. Retry later.");
    }

    private static async Task<Results<Ok<Page<LoraResponse>>, ProblemHttpResult>> List(HttpContext http, HotReads reads, string? cursor, string? limit, string? includeArchived, string? status)
    {
        var teamId = http.Caller().TeamId;
        if (Cursor.ParseLimit(limit, out var take) is { } badLimit) return badLimit;
        if (!Cursor.TryDecode(cursor, out var after)) return Problems.Of(400, "invalid_cursor", "The cursor is not one this API returned.");
        var withArchived = false;
        if (includeArchived is not null && !bool.TryParse(includeArchived, out withArchived))
            return Problems.Field("includeArchived", "includeArchived must be true or false.");
        if (status is not null && !LoraStatus.All.Contains(status))
            return Problems.Field("status", "status must be one of " + string.Join(", ", LoraStatus.All) + ".");

        var rows = await reads.TeamLoraPageAsync(teamId, status, withArchived, after?.At ?? default, after?.Id, take + 1, http.RequestAborted);
        var next = rows.Count > take ? new Cursor(rows[take - 1].CreatedAt.Ticks, rows[take - 1].Id).Encode() : null;
        return TypedResults.Ok(new Page<LoraResponse>(rows.Take(take).Select(LoraResponse.From).ToList(), next));
    }

    private static async Task<IResult> Get(HttpContext http, HotReads reads, string id)
    {
        if (!Ids.IsLoraId(id)) return Problems.InvalidId(id);
        var lora = await reads.TeamLoraAsync(id, http.Caller().TeamId, http.RequestAborted);
        return lora is null ? Problems.NotFound("The LoRA") : TypedResults.Ok(LoraResponse.From(lora));
    }

    private static async Task<Results<Ok<LoraResponse>, ProblemHttpResult>> Archive(HttpContext http, LikenessDb db, LoraLifecycle lifecycle,
        LoraFiles files, string id, string? purge)
    {
        if (!Ids.IsLoraId(id)) return Problems.InvalidId(id);
        var doPurge = false;
        if (purge is not null && !bool.TryParse(purge, out doPurge)) return Problems.Field("purge", "purge must be true or false.");
        var teamId = http.Caller().TeamId;
        if (!await lifecycle.ArchiveAsync(teamId, id, http.RequestAborted)) return Problems.NotFound("The LoRA");
        if (doPurge) await files.PurgeAsync(id, http.RequestAborted);
        db.ChangeTracker.Clear();
        return TypedResults.Ok(LoraResponse.From((await Find(db, http, id))!));
    }

    private static async Task<IResult> Cancel(HttpContext http, LikenessDb db, LoraLifecycle lifecycle, string id)
    {
        if (!Ids.IsLoraId(id)) return Problems.InvalidId(id);
        var result = await lifecycle.CancelAsync(http.Caller().TeamId, id, http.RequestAborted);
        if (result == CancelResult.NotFound) return Problems.NotFound("The LoRA");
        if (result == CancelResult.NotCancellable)
            return Problems.Of(409, "not_cancellable",
                $"Only a LoRA that is PENDING, UPLOADING or TRAINING can be cancelled; this one is {(await Find(db, http, id))?.Status ?? "gone"}.");
        db.ChangeTracker.Clear();
        return TypedResults.Ok(LoraResponse.From((await Find(db, http, id))!));
    }

    private static async Task<IResult> Weights(HttpContext http, LikenessDb db, IBlobStore blobs, IOptions<LikenessOptions> options, string id, string? format)
    {
        if (!Ids.IsLoraId(id)) return Problems.InvalidId(id);
        AdapterFormat? target = format switch
        {
            null or "native" => AdapterFormat.Native,
            "peft" or "diffusers" => AdapterFormat.Peft,
            "kohya" => AdapterFormat.Kohya,
            _ => null,
        };
        if (target is null) return Problems.Field("format", "format must be native, peft (diffusers) or kohya.");
        var lora = await Find(db, http, id);
        if (lora is null) return Problems.NotFound("The LoRA");
        if (lora.Status != LoraStatus.Ready)
            return Problems.Of(409, "lora_not_ready", $"The LoRA is {lora.Status}; weights exist only once it is READY.");
        // The database is done with: a download of any length must not hold the connection the request opened.
        await db.Database.CloseConnectionAsync();
        var stream = await blobs.OpenReadAsync(BlobKeys.Adapter(id), http.RequestAborted);
        if (stream is null) return Problems.NotFound("The adapter file");
        var fileName = $"{lora.Id}{(target == AdapterFormat.Native ? "" : "." + format)}.safetensors";
        if (target == AdapterFormat.Native) return TypedResults.Stream(stream, "application/octet-stream", fileName);

        // Other layouts are converted from the stored native file, in a scratch folder that goes with the response
        // (or, if the process dies first, with the orphan sweep).
        var scratch = Scratch(http, options);
        var native = Path.Combine(scratch, "native.safetensors");
        var converted = Path.Combine(scratch, "converted.safetensors");
        await using (stream)
        await using (var file = File.Create(native)) await stream.CopyToAsync(file, http.RequestAborted);
        AdapterFormats.Convert(native, converted, target.Value, FluxPreset.ByName(lora.BaseModel).Transformer);
        var result = new FileStream(converted, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 81920);
        return TypedResults.Stream(result, "application/octet-stream", fileName);
    }

    private static async Task<IResult> Deliveries(HttpContext http, LikenessDb db, string id)
    {
        if (!Ids.IsLoraId(id)) return Problems.InvalidId(id);
        if (await Find(db, http, id) is null) return Problems.NotFound("The LoRA");
        var attempts = await (
            from a in db.WebhookAttempts.AsNoTracking()
            join m in db.WebhookMessages.AsNoTracking() on a.MessageId equals m.Id
            where a.LoraId == id
            orderby a.Id descending
            select new WebhookDeliveryResponse(a.Id, m.Id, m.EventType, m.Url, a.Attempt, a.AttemptedAt, a.StatusCode, a.Error,
                a.DurationMs, a.Succeeded, a.NextAttemptAt)).ToListAsync(http.RequestAborted);
        return TypedResults.Ok(new Page<WebhookDeliveryResponse>(attempts, null));
    }

    private static async Task<Results<Ok<Page<CaptionResponse>>, ProblemHttpResult>> Captions(HttpContext http, LikenessDb db, IBlobStore blobs,
        IOptions<LikenessOptions> options, string id)
    {
        if (!Ids.IsLoraId(id)) return Problems.InvalidId(id);
        var lora = await Find(db, http, id);
        if (lora is null) return Problems.NotFound("The LoRA");
        var ct = http.RequestAborted;
        await using var stored = await blobs.OpenReadAsync(BlobKeys.Dataset(id), ct);
        if (stored is null)
        {
            // Before the end of UPLOADING there is nothing yet; after a failure, cancel or purge the dataset is gone.
            return lora.Status is LoraStatus.Pending or LoraStatus.Uploading
                ? Problems.Of(409, "lora_not_ready", $"The LoRA is {lora.Status}; its captions are listed once its dataset is stored, at the end of UPLOADING.")
                : Problems.NotFound("The LoRA's dataset");
        }
        // A zip is read from its end: a local copy, since blob streams (S3) do not seek.
        await using var copy = new FileStream(Path.Combine(Scratch(http, options), "dataset.zip"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 81920);
        await stored.CopyToAsync(copy, ct);
        copy.Position = 0;
        var (manifest, bytes) = DatasetPackager.ReadListing(copy);
        var items = manifest.Items.Select(i => new CaptionResponse(i.Image, i.Caption, i.Source ?? CaptionSources.Local,
            i.Width, i.Height, bytes.GetValueOrDefault(i.Image))).ToList();
        return TypedResults.Ok(new Page<CaptionResponse>(items, null));
    }

    /// <summary>
    /// A private folder for one request's temporary files, in the staging area: removed when the response is done, and
    /// by the orphan sweep if the process dies before that (files in the system's temp folder would outlive it).
    /// </summary>
    private static string Scratch(HttpContext http, IOptions<LikenessOptions> options)
    {
        var folder = StagingFolder.Create(options.Value.StagingFolder);
        http.Response.RegisterForDispose(folder);
        return folder.Path;
    }

    private static Task<Lora?> Find(LikenessDb db, HttpContext http, string id)
    {
        return HotQueries.TeamLora(db, id, http.Caller().TeamId, http.RequestAborted);
    }
}

/// <param name="Image">The photo's name in the dataset zip (<c>001.jpg</c>…), in upload order.</param>
/// <param name="Caption">The training caption, trigger word and class phrase included.</param>
/// <param name="Source">The captioner that described the photo: <c>openai</c> or <c>local</c> (also the fallback's).</param>
/// <param name="Width">The normalised photo's width in pixels, as trained on.</param>
/// <param name="Bytes">The normalised JPEG's size.</param>
public sealed record CaptionResponse(string Image, string Caption, string Source, int Width, int Height, long Bytes);

public sealed record WebhookDeliveryResponse(long Id, string WebhookId, string Event, string Url, int Attempt, DateTime AttemptedAt,
    int? StatusCode, string? Error, int DurationMs, bool Succeeded, DateTime? NextAttemptAt);
