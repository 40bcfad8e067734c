using Likeness.Core.Data;
using Microsoft.Extensions.Logging;

namespace Likeness.Core.Common;

/// <summary>
/// The lines an operator follows a LoRA, job or generation by. Each names its ids as properties (structured
/// loggers keep them as fields), and <see cref="JobScope"/> puts a job's ids around everything logged while it runs.
/// </summary>
public static partial class LifecycleLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "LoRA {LoraId} created for team {TeamId}: {ImageCount} photos, {Steps} steps")]
    public static partial void LoraCreated(this ILogger logger, string loraId, string teamId, int imageCount, int steps);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "LoRA {LoraId} is READY")]
    public static partial void LoraReady(this ILogger logger, string loraId);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "LoRA {LoraId} FAILED ({ErrorCode}): {ErrorMessage}")]
    public static partial void LoraFailed(this ILogger logger, string loraId, string errorCode, string errorMessage);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Claimed job {JobId} ({Queue}) for {SubjectId}, attempt {Attempt}")]
    public static partial void JobClaimed(this ILogger logger, long jobId, string queue, string subjectId, int attempt);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Job {JobId} ({Queue}) finished in {ElapsedMs} ms")]
    public static partial void JobFinished(this ILogger logger, long jobId, string queue, long elapsedMs);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Warning, Message = "Job {JobId} ({Queue}) failed after {ElapsedMs} ms: {Reason}")]
    public static partial void JobFailed(this ILogger logger, long jobId, string queue, long elapsedMs, string reason);

    [LoggerMessage(EventId = 1201, Level = LogLevel.Information,
        Message = "Generation {GenerationId} of LoRA {LoraId} {Status}: {ImageCount} of {Requested} images, {Refunded} credits refunded")]
    public static partial void GenerationDone(this ILogger logger, string generationId, string loraId, string status, int imageCount, int requested, long refunded);

    /// <summary>
    /// The job's id and queue, and its subject under the name it has elsewhere (LoraId, GenerationId); a message
    /// template, so that a text sink shows it as a sentence and a structured one keeps the properties.
    /// </summary>
    public static IDisposable? JobScope(this ILogger logger, Job job) => job.Queue switch
    {
        JobQueues.Caption or JobQueues.Training => logger.BeginScope("Job {JobId} ({Queue}) for LoRA {LoraId}", job.Id, job.Queue, job.SubjectId),
        JobQueues.Generation => logger.BeginScope("Job {JobId} ({Queue}) for generation {GenerationId}", job.Id, job.Queue, job.SubjectId),
        _ => logger.BeginScope("Job {JobId} ({Queue}) for {SubjectId}", job.Id, job.Queue, job.SubjectId),
    };
}
