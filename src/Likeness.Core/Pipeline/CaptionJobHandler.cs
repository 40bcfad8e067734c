using Likeness.Core.Blobs;
using Likeness.Core.Captioning;
using Likeness.Core.Data;
using Likeness.Core.Datasets;
using Likeness.Core.Jobs;
using Likeness.Core.Loras;
using Likeness.Core.Media;
using Likeness.Core.Ports;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Pipeline;

/// <summary>UPLOADING: normalise every photo, caption it, insert the trigger word, write and store the dataset zip.</summary>
public sealed class CaptionJobHandler(LikenessDb db, LoraLifecycle lifecycle, IBlobStore blobs, ICaptioner captioner,
    IImageGenerator engine, PipelineOptions options) : IJobHandler
{
    public async Task<JobOutcome> HandleAsync(Job job, CancellationToken ct)
    {
        if (!await lifecycle.BeginUploadingAsync(job.SubjectId, ct)) return JobOutcome.Done;
        var lora = await db.Loras.AsNoTracking().SingleAsync(l => l.Id == job.SubjectId, ct);
        var subject = new SubjectDescription(lora.SubjectKind, lora.Gender, lora.Ethnicity, lora.Age);

        var keys = await blobs.ListAsync(BlobKeys.PhotosPrefix(lora.Id), ct);
        if (keys.Count == 0) throw new InvalidOperationException("The LoRA's photos are missing from storage.");

        // Photos are described several at a time where the captioner allows it (a remote endpoint mostly waits);
        // the dataset keeps the upload order whatever order the captions come back in.
        var items = new DatasetItem[keys.Count];
        var captioned = 0;
        using var progressGate = new SemaphoreSlim(1, 1);
        await lifecycle.ReportCaptioningAsync(lora.Id, 0, keys.Count, ct);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, captioner.Parallelism), CancellationToken = ct };
        await Parallel.ForEachAsync(Enumerable.Range(0, keys.Count), parallel, async (i, token) =>
        {
            await using var stream = await blobs.OpenReadAsync(keys[i], token) ?? throw new FileNotFoundException(keys[i]);
            using var buffer = new MemoryStream();
            await stream.CopyToAsync(buffer, token);
            var photo = PhotoNormalizer.Normalize(buffer.ToArray());
            var caption = await captioner.CaptionAsync(new CaptionInput(photo.Jpeg, photo.Width, photo.Height, subject), token);
            items[i] = new DatasetItem(photo.Jpeg, CaptionComposer.Compose(lora.TriggerWord, subject, caption.Text), photo.Width, photo.Height, caption.Source);
            // One DbContext serves the job: progress writes take turns.
            await progressGate.WaitAsync(token);
            try { await lifecycle.ReportCaptioningAsync(lora.Id, ++captioned, keys.Count, token); }
            finally { progressGate.Release(); }
        });

        var zip = Path.Combine(options.LoraWorkFolder(lora.Id), "dataset.zip");
        Directory.CreateDirectory(Path.GetDirectoryName(zip)!);
        DatasetPackager.Write(zip, lora.TriggerWord, subject, engine.BaseModel, items);
        await BlobFiles.UploadAsync(blobs, BlobKeys.Dataset(lora.Id), zip, ct);
        await lifecycle.DatasetReadyAsync(lora.Id, ct);
        return JobOutcome.Done;
    }

    public async Task<bool> IsStillWantedAsync(Job job, CancellationToken ct) =>
        await db.Loras.AsNoTracking().AnyAsync(l => l.Id == job.SubjectId && LoraStatus.Active.Contains(l.Status), ct);

    public Task GiveUpAsync(Job job, string error, CancellationToken ct) =>
        lifecycle.FailAsync(job.SubjectId, "dataset_failed", "Preparing the dataset failed: " + error, ct);
}
