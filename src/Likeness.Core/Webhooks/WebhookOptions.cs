namespace Likeness.Core.Webhooks;

public sealed class WebhookOptions
{
    public const string Section = "Likeness:Webhooks";

    /// <summary>Allow http and loopback/private/link-local targets (development and tests only).</summary>
    public bool AllowPrivate { get; set; }

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Delay before each retry; after the last one the message is given up.</summary>
    public List<TimeSpan> RetrySchedule { get; set; } =
    [
        TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30), TimeSpan.FromHours(2), TimeSpan.FromHours(5),
        TimeSpan.FromHours(10), TimeSpan.FromHours(14), TimeSpan.FromHours(20), TimeSpan.FromHours(24),
    ];
}
