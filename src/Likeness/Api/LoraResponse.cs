using System.Text.Json.Nodes;
using Likeness.Core.Data;

namespace Likeness.Api;

/// <param name="Phase"><c>captioning</c> while UPLOADING (step = photos captioned, totalSteps = photos, no ETA), then
/// <c>training</c> (optimizer steps).</param>
public sealed record LoraProgress(int Step, int TotalSteps, int? EtaSeconds, string Phase)
{
    public const string Captioning = "captioning";
    public const string Training = "training";

    public static LoraProgress? Of(Lora l)
    {
        if (l.TrainingStartedAt is not null) return new LoraProgress(l.ProgressStep ?? 0, l.ProgressTotal ?? l.Steps, l.EtaSeconds, Training);
        if (l.Status == LoraStatus.Uploading && l.ProgressTotal is { } photos) return new LoraProgress(l.ProgressStep ?? 0, photos, null, Captioning);
        return null;
    }
}

public sealed record LoraError(string Code, string Message);

public sealed record LoraResponse(
    string Id, string Name, string SubjectKind, string? Gender, string? Ethnicity, string? Age,
    string Status, int ImageCount, int Steps, int LoraRank, bool IsReady, bool HasWeights, string? TriggerWord,
    LoraProgress? Progress, LoraError? Error, JsonObject Metadata,
    DateTime CreatedAt, DateTime? StartedAt, DateTime? TrainingStartedAt, DateTime? CompletedAt, DateTime? ArchivedAt)
{
    public static LoraResponse From(Lora l)
    {
        // The trigger word shows once the adapter exists: READY, or archived after READY.
        var trained = l.Status == LoraStatus.Ready || (l.Status == LoraStatus.Archived && l.ErrorCode is null);
        return new LoraResponse(
            l.Id, l.Name, l.SubjectKind, l.Gender, l.Ethnicity, l.Age,
            l.Status, l.ImageCount, l.Steps, l.LoraRank,
            IsReady: l.Status == LoraStatus.Ready,
            HasWeights: trained && !l.Purged,
            TriggerWord: trained ? l.TriggerWord : null,
            Progress: LoraProgress.Of(l),
            Error: l.ErrorCode is null ? null : new LoraError(l.ErrorCode, l.ErrorMessage ?? l.ErrorCode),
            Metadata: l.MetadataJson is null ? [] : JsonNode.Parse(l.MetadataJson)!.AsObject(),
            l.CreatedAt, l.StartedAt, l.TrainingStartedAt, l.CompletedAt, l.ArchivedAt);
    }
}

public sealed record LoraCreated(string Id, string Status, int ImageCount);

public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);
