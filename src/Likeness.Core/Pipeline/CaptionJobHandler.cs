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

        var items = new List<DatasetItem>();
        foreach (var key in keys)
        {
            await using var stream = await blobs.OpenReadAsync(key, ct) ?? throw new FileNotFoundException(key);
            using var buffer = new MemoryStream();
            await stream.CopyToAsync(buffer, ct);
            var photo = PhotoNormalizer.Normalize(buffer.ToArray());
            var caption = await captioner.CaptionAsync(new CaptionInput(photo.Jpeg, photo.Width, photo.Height, subject), ct);
            items.Add(new DatasetItem(photo.Jpeg, CaptionComposer.Compose(lora.TriggerWord, subject, caption), photo.Width, photo.Height));
        }

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
