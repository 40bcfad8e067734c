namespace Likeness.Core.Data;

public sealed class Team
{
    public required string Id { get; set; }
    public required string Name { get; set; }
    /// <summary>Always equal to the sum of the team's ledger amounts; changed only together with a ledger row.</summary>
    public long Credits { get; set; }
    public int MaxConcurrentTrainings { get; set; } = 10;
    public DateTime CreatedAt { get; set; }
}

public sealed class ApiKey
{
    public required string Id { get; set; }
    public required string TeamId { get; set; }
    /// <summary>SHA-256 of the key's UTF-8 bytes; the key itself is never stored.</summary>
    public required byte[] KeyHash { get; set; }
    /// <summary>The first characters of the key, to tell keys apart in listings.</summary>
    public required string Prefix { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? RevokedAt { get; set; }
}

public sealed class LedgerEntry
{
    public long Id { get; set; }
    public required string TeamId { get; set; }
    public long Amount { get; set; }
    public long BalanceAfter { get; set; }
    public required string Reason { get; set; }
    public string? LoraId { get; set; }
    public string? GenerationId { get; set; }
    public DateTime CreatedAt { get; set; }
}

public static class LedgerReasons
{
    public const string Grant = "grant";
    public const string LoraCreate = "lora_create";
    public const string LoraTraining = "lora_training";
    public const string Generation = "generation";
    public const string Refund = "refund";
}

public sealed class Lora
{
    public required string Id { get; set; }
    public required string TeamId { get; set; }
    public required string Name { get; set; }
    public required string SubjectKind { get; set; }
    public string? Gender { get; set; }
    public string? Ethnicity { get; set; }
    public string? Age { get; set; }
    public required string Status { get; set; }
    public int ImageCount { get; set; }
    public int Steps { get; set; }
    public int LoraRank { get; set; }
    public required string BaseModel { get; set; }
    /// <summary>Made at creation (the captions need it), shown only once READY. Unique across the installation.</summary>
    public required string TriggerWord { get; set; }
    public int? ProgressStep { get; set; }
    public int? ProgressTotal { get; set; }
    public int? EtaSeconds { get; set; }
    public double? Loss { get; set; }
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public string? MetadataJson { get; set; }
    public string? WebhookUrl { get; set; }
    public string WebhookEvents { get; set; } = "completed,failed";
    /// <summary>SHA-256 of the API key that created the LoRA: the webhook signing secret.</summary>
    public required byte[] CreatorKeyHash { get; set; }
    /// <summary>Credits charged and not yet refunded for this LoRA (2, then 257; back to 0 on failure).</summary>
    public long CreditsHeld { get; set; }
    public bool Purged { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? TrainingStartedAt { get; set; }
    public DateTime? CompletedAt { get; set; }
    public DateTime? ArchivedAt { get; set; }
}

public static class LoraStatus
{
    public const string Pending = "PENDING";
    public const string Uploading = "UPLOADING";
    public const string Training = "TRAINING";
    public const string Ready = "READY";
    public const string Failed = "FAILED";
    public const string Archived = "ARCHIVED";

    public static readonly string[] Active = [Pending, Uploading, Training];
    public static readonly string[] All = [Pending, Uploading, Training, Ready, Failed, Archived];
    public static bool IsActive(string status) => Active.Contains(status);
}

public sealed class Generation
{
    public required string Id { get; set; }
    public required string TeamId { get; set; }
    public required string LoraId { get; set; }
    public required string Status { get; set; }
    public required string Model { get; set; }
    public required string Prompt { get; set; }
    public required string ParamsJson { get; set; }
    public int NumOutputs { get; set; }
    public long Seed { get; set; }
    /// <summary>Net of refunds.</summary>
    public long CreditsCharged { get; set; }
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? CompletedAt { get; set; }
    public List<GenerationImage> Images { get; set; } = [];
}

public sealed class GenerationImage
{
    public long Id { get; set; }
    public required string GenerationId { get; set; }
    public int Index { get; set; }
    public required string BlobKey { get; set; }
    public int Width { get; set; }
    public int Height { get; set; }
    public required string ContentType { get; set; }
    public long Seed { get; set; }
}

public static class GenerationStatus
{
    public const string Pending = "PENDING";
    public const string Running = "RUNNING";
    public const string Completed = "COMPLETED";
    public const string Failed = "FAILED";
    public static bool IsTerminal(string s) => s is Completed or Failed;
}

/// <summary>A unit of durable work. A worker claims it with a lease; an expired lease lets another worker take over.</summary>
public sealed class Job
{
    public long Id { get; set; }
    public required string Queue { get; set; }
    /// <summary>The LoRA, generation or webhook message the job works on.</summary>
    public required string SubjectId { get; set; }
    public required string State { get; set; }
    public DateTime RunAfter { get; set; }
    public string? LeaseOwner { get; set; }
    public DateTime? LeaseExpiresAt { get; set; }
    public int Attempts { get; set; }
    public string? LastError { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? FinishedAt { get; set; }
    /// <summary>The W3C <c>traceparent</c> of the span that enqueued the job: its runs continue that trace.</summary>
    public string? TraceParent { get; set; }
}

public static class JobQueues
{
    public const string Caption = "caption";
    public const string Training = "training";
    public const string Generation = "generation";
    public const string Webhook = "webhook";
    public static readonly string[] All = [Caption, Training, Generation, Webhook];
}

public static class JobStates
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Done = "done";
    public const string Failed = "failed";
}

/// <summary>A webhook event to deliver (the durable outbox); its delivery job is a <see cref="Job"/> on the webhook queue.</summary>
public sealed class WebhookMessage
{
    public required string Id { get; set; }
    public required string LoraId { get; set; }
    public required string TeamId { get; set; }
    public required string EventType { get; set; }
    public required string Url { get; set; }
    public required string PayloadJson { get; set; }
    public required byte[] SecretHash { get; set; }
    public int Attempts { get; set; }
    public required string State { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? DeliveredAt { get; set; }
}

public sealed class WebhookAttempt
{
    public long Id { get; set; }
    public required string MessageId { get; set; }
    public required string LoraId { get; set; }
    public int Attempt { get; set; }
    public DateTime AttemptedAt { get; set; }
    public int? StatusCode { get; set; }
    public string? Error { get; set; }
    public int DurationMs { get; set; }
    public bool Succeeded { get; set; }
    public DateTime? NextAttemptAt { get; set; }
}

public sealed class IdempotencyRecord
{
    public required string TeamId { get; set; }
    public required string Key { get; set; }
    public required string Endpoint { get; set; }
    public required string Fingerprint { get; set; }
    public bool Completed { get; set; }
    public int StatusCode { get; set; }
    public string? ResponseJson { get; set; }
    public string? Location { get; set; }
    /// <summary>
    /// The LoRA or generation the first request made, written in the transaction that made it: set while the response
    /// is not (yet) stored means the work is done and must never be done twice.
    /// </summary>
    public string? ResourceId { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime ExpiresAt { get; set; }
}

/// <summary>Installation-wide secrets kept in the database so every node shares them across restarts.</summary>
public sealed class ServerSecret
{
    public required string Name { get; set; }
    public required byte[] Value { get; set; }
}
