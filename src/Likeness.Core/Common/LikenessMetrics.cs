using System.Diagnostics.Metrics;
using Likeness.Core.Data;

namespace Likeness.Core.Common;

/// <summary>
/// The service's own metrics, on a Meter named <see cref="LikenessTelemetry.Name"/> made by the host's
/// <see cref="IMeterFactory"/> (so each host in a process has its own). Counters are recorded after the transaction
/// that makes the fact true has committed: a rolled-back charge is never counted.
/// </summary>
public sealed class LikenessMetrics
{
    /// <summary>Instrument names (OpenTelemetry style; a Prometheus scrape shows them with _ and a unit suffix).</summary>
    public static class Names
    {
        public const string JobsClaimed = "likeness.jobs.claimed";
        public const string JobsCompleted = "likeness.jobs.completed";
        public const string JobsFailed = "likeness.jobs.failed";
        public const string JobDuration = "likeness.job.duration";
        public const string QueueDepth = "likeness.queue.depth";
        public const string QueueAge = "likeness.queue.age";
        public const string TrainingStepDuration = "likeness.training.step.duration";
        public const string ImagesGenerated = "likeness.images.generated";
        public const string CreditsCharged = "likeness.credits.charged";
        public const string CreditsRefunded = "likeness.credits.refunded";
        public const string WebhookDeliveries = "likeness.webhook.deliveries";
    }

    /// <summary>Attribute (label) names.</summary>
    public static class Labels
    {
        public const string Queue = "queue";
        public const string Outcome = "outcome";
        public const string Reason = "reason";
        public const string Subject = "subject";
        public const string Event = "event";
        public const string BaseModel = "base_model";
    }

    /// <summary>Values of <see cref="Labels.Outcome"/>.</summary>
    public static class Outcomes
    {
        public const string Completed = "completed";
        public const string Failed = "failed";
        public const string Retry = "retry";
        public const string Delivered = "delivered";
        public const string Retrying = "retrying";
        /// <summary>Span-only outcomes: the attempt ended without settling the job.</summary>
        public const string HandedBack = "handed_back";
        public const string LeaseLost = "lease_lost";
    }

    /// <summary>Values of <see cref="Labels.Subject"/> on refunds.</summary>
    public static class Subjects
    {
        public const string Lora = "lora";
        public const string Generation = "generation";
    }

    private const string Seconds = "s";

    // A flux-tiny step on a CPU takes tens of milliseconds, a FLUX.1-dev step on a CPU minutes.
    private static readonly double[] StepBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
    // Jobs last from a webhook's milliseconds to a full-size training's hours.
    private static readonly double[] JobBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

    private readonly Counter<long> _claimed;
    private readonly Counter<long> _completed;
    private readonly Counter<long> _failed;
    private readonly Histogram<double> _jobDuration;
    private readonly Histogram<double> _stepDuration;
    private readonly Counter<long> _images;
    private readonly Counter<long> _charged;
    private readonly Counter<long> _refunded;
    private readonly Counter<long> _webhooks;
    private readonly ObservableGauge<long> _depth;
    private readonly ObservableGauge<double> _age;
    private volatile IReadOnlyList<QueueSample> _queues = [];

    public LikenessMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(LikenessTelemetry.Name);
        _claimed = meter.CreateCounter<long>(Names.JobsClaimed, "{job}", "Jobs taken from a queue by a worker (each attempt counts).");
        _completed = meter.CreateCounter<long>(Names.JobsCompleted, "{job}", "Jobs that finished successfully.");
        _failed = meter.CreateCounter<long>(Names.JobsFailed, "{job}", "Jobs that finished without success and will not run again.");
        _jobDuration = meter.CreateHistogram(Names.JobDuration, Seconds, "Time one attempt at a job ran, by queue and outcome.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = JobBuckets });
        _stepDuration = meter.CreateHistogram(Names.TrainingStepDuration, Seconds, "Time of one training step, from the trainer's progress reports.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = StepBuckets });
        _images = meter.CreateCounter<long>(Names.ImagesGenerated, "{image}", "Images generated and stored.");
        _charged = meter.CreateCounter<long>(Names.CreditsCharged, "{credit}", "Credits charged, by ledger reason.");
        _refunded = meter.CreateCounter<long>(Names.CreditsRefunded, "{credit}", "Credits refunded, by what was refunded.");
        _webhooks = meter.CreateCounter<long>(Names.WebhookDeliveries, "{delivery}", "Webhook delivery attempts, by outcome.");
        _depth = meter.CreateObservableGauge(Names.QueueDepth, () => Observe(q => (long)q.Depth), "{job}",
            "Jobs waiting to run now, by queue (sampled from the database).");
        _age = meter.CreateObservableGauge(Names.QueueAge, () => Observe(q => q.OldestWait.TotalSeconds), Seconds,
            "How long the oldest job waiting to run has waited, by queue; 0 when none waits (sampled from the database).");
    }

    /// <summary>True while some listener wants the queue gauges, so that the database is sampled only for them.</summary>
    public bool QueueGaugesWanted => _depth.Enabled || _age.Enabled;

    /// <summary>The latest sample of the job table, reported by the queue gauges.</summary>
    public void SetQueues(IReadOnlyList<QueueSample> samples) => _queues = samples;

    public void JobClaimed(string queue) => _claimed.Add(1, Tag(Labels.Queue, queue));

    /// <summary>One attempt settled: counted as completed or failed (a retry is neither), and timed.</summary>
    public void JobSettled(string queue, string outcome, TimeSpan elapsed)
    {
        if (outcome == Outcomes.Completed) _completed.Add(1, Tag(Labels.Queue, queue));
        else if (outcome == Outcomes.Failed) _failed.Add(1, Tag(Labels.Queue, queue));
        _jobDuration.Record(elapsed.TotalSeconds, Tag(Labels.Queue, queue), Tag(Labels.Outcome, outcome));
    }

    public void TrainingStep(TimeSpan elapsed, string baseModel) =>
        _stepDuration.Record(elapsed.TotalSeconds, Tag(Labels.BaseModel, baseModel));

    public void ImageGenerated(string baseModel) => _images.Add(1, Tag(Labels.BaseModel, baseModel));

    /// <summary>A committed charge; <paramref name="reason"/> is its ledger reason (<see cref="LedgerReasons"/>).</summary>
    public void CreditsCharged(long amount, string reason) => _charged.Add(amount, Tag(Labels.Reason, reason));

    /// <summary>A committed refund; <paramref name="subject"/> is one of <see cref="Subjects"/>.</summary>
    public void CreditsRefunded(long amount, string subject)
    {
        if (amount > 0) _refunded.Add(amount, Tag(Labels.Subject, subject));
    }

    public void WebhookDelivery(string outcome, string eventType) =>
        _webhooks.Add(1, Tag(Labels.Outcome, outcome), Tag(Labels.Event, eventType));

    private IEnumerable<Measurement<T>> Observe<T>(Func<QueueSample, T> value) where T : struct =>
        _queues.Select(q => new Measurement<T>(value(q), Tag(Labels.Queue, q.Queue)));

    private static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);
}

/// <summary>One queue's waiting jobs at the time of a sample.</summary>
public sealed record QueueSample(string Queue, int Depth, TimeSpan OldestWait);
