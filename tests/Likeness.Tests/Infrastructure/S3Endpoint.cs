namespace Likeness.Tests.Infrastructure;

/// <summary>
/// The S3-compatible server named by LIKENESS_TEST_S3 (an <c>s3://BUCKET?endpoint=…&amp;pathStyle=true&amp;region=…</c>
/// setting; .ci/run starts s3rver and names it). Credentials come from the AWS variables. Without it the S3 tests
/// are skipped, with that reason shown.
/// </summary>
public static class S3Endpoint
{
    public const string Variable = "LIKENESS_TEST_S3";

    public static string? SkipReason => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 }
        ? null
        : $"S3 tests need an S3-compatible server: set {Variable} (bash .ci/run starts s3rver).";

    /// <summary>The configured bucket with a fresh key prefix, so tests never see each other's blobs.</summary>
    public static string FreshSetting()
    {
        var setting = Environment.GetEnvironmentVariable(Variable)!;
        var query = setting.IndexOf('?');
        var bucket = query < 0 ? setting : setting[..query];
        return $"{bucket.TrimEnd('/')}/t{Guid.NewGuid():N}{(query < 0 ? "" : setting[query..])}";
    }
}
