using System.Diagnostics;
using Likeness.Core.Data;

namespace Likeness.Core.Common;

/// <summary>
/// The service's own traces, in System.Diagnostics terms so that Core needs no OpenTelemetry package: the host
/// subscribes to <see cref="Name"/>. A job row keeps the W3C <c>traceparent</c> of whatever enqueued it, and the job's
/// span is that context's child, so one trace follows a LoRA from its POST through its caption and training jobs.
/// </summary>
public static class LikenessTelemetry
{
    /// <summary>The ActivitySource's and the Meter's name.</summary>
    public const string Name = "Likeness";

    public static readonly ActivitySource Source = new(Name, typeof(LikenessTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>Span attributes: the messaging conventions for the job, the service's own names for its subjects.</summary>
    public static class Tags
    {
        public const string MessagingSystem = "messaging.system";
        public const string MessagingOperationType = "messaging.operation.type";
        public const string MessagingDestination = "messaging.destination.name";
        public const string MessagingMessageId = "messaging.message.id";
        public const string JobAttempt = "likeness.job.attempt";
        public const string JobOutcome = "likeness.job.outcome";
        public const string LoraId = "likeness.lora.id";
        public const string GenerationId = "likeness.generation.id";
        public const string WebhookMessageId = "likeness.webhook.id";
    }

    private const string MessagingSystemValue = "likeness";
    private const string ProcessOperation = "process";

    /// <summary>The current span's context as a <c>traceparent</c> header value, for a job row; null outside any span.</summary>
    public static string? CurrentTraceParent() =>
        Activity.Current is { IdFormat: ActivityIdFormat.W3C } current ? current.Id : null;

    /// <summary>
    /// Starts the span of one attempt at a job, as the child of the context the job row carries (none: a new trace).
    /// Null when nothing listens.
    /// </summary>
    public static Activity? StartJob(Job job)
    {
        // Remote: the context may come from another process, the API node that took the request.
        ActivityContext.TryParse(job.TraceParent, null, isRemote: true, out var parent);
        var activity = Source.StartActivity($"{ProcessOperation} {job.Queue}", ActivityKind.Consumer, parent);
        if (activity is null) return null;
        activity.SetTag(Tags.MessagingSystem, MessagingSystemValue);
        activity.SetTag(Tags.MessagingOperationType, ProcessOperation);
        activity.SetTag(Tags.MessagingDestination, job.Queue);
        activity.SetTag(Tags.MessagingMessageId, job.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        activity.SetTag(Tags.JobAttempt, job.Attempts);
        activity.SetTag(SubjectTag(job.Queue), job.SubjectId);
        return activity;
    }

    /// <summary>Names the subject a request made (a new LoRA or generation) on the request's span, where one is recorded.</summary>
    public static void TagCurrent(string tag, string value) => Activity.Current?.SetTag(tag, value);

    /// <summary>The attribute that names a job's subject: a LoRA, a generation or a webhook message.</summary>
    public static string SubjectTag(string queue) => queue switch
    {
        JobQueues.Caption or JobQueues.Training => Tags.LoraId,
        JobQueues.Generation => Tags.GenerationId,
        _ => Tags.WebhookMessageId,
    };

    /// <summary>
    /// Leaves the current span for the rest of this async flow: a loop beside the work (heartbeats, progress
    /// writes) would otherwise hang hundreds of database spans under one job. The caller's flow keeps its span.
    /// </summary>
    public static void Detach() => Activity.Current = null;
}
