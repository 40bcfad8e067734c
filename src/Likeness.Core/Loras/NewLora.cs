namespace Likeness.Core.Loras;

/// <summary>A validated training request.</summary>
public sealed record NewLora(
    string Name,
    string SubjectKind,
    string? Gender,
    string? Ethnicity,
    string? Age,
    int Steps,
    int LoraRank,
    string? WebhookUrl,
    string WebhookEvents,
    string? MetadataJson);

/// <summary>An accepted photo waiting in staging: its file and the extension of its real format.</summary>
public sealed record StagedPhoto(string Path, string Extension);

public enum CreateOutcome { Created, InsufficientCredits, ConcurrencyLimit, InsufficientStorage }

public sealed record CreateResult(CreateOutcome Outcome, Data.Lora? Lora);
