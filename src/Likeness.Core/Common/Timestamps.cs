using System.Globalization;

namespace Likeness.Core.Common;

public static class Timestamps
{
    /// <summary>ISO-8601 UTC with milliseconds, as every timestamp of the API: 2026-04-25T10:42:11.000Z.</summary>
    public static string Format(DateTime utc) =>
        DateTime.SpecifyKind(utc, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    public static string? Format(DateTime? utc) => utc is null ? null : Format(utc.Value);
}
