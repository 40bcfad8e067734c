using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;

namespace Likeness.Api;

/// <summary>An opaque keyset cursor: the sort key of the last item of a page.</summary>
public sealed record Cursor(long Ticks, string Id)
{
    /// <summary>The sort time the ticks stand for (always representable: <see cref="TryDecode"/> refuses other ticks).</summary>
    public DateTime At => new(Ticks, DateTimeKind.Utc);

    public string Encode() => WebEncoders.Base64UrlEncode(Encoding.UTF8.GetBytes($"{Ticks.ToString(CultureInfo.InvariantCulture)}:{Id}"));

    public static bool TryDecode(string? value, out Cursor? cursor)
    {
        cursor = null;
        if (string.IsNullOrEmpty(value)) return true;
        try
        {
            var text = Encoding.UTF8.GetString(WebEncoders.Base64UrlDecode(value));
            var colon = text.IndexOf(':');
            if (colon <= 0 || !long.TryParse(text[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)) return false;
            // A forged cursor may name ticks no DateTime can hold; it is as foreign as any other.
            if (ticks > DateTime.MaxValue.Ticks) return false;
            cursor = new Cursor(ticks, text[(colon + 1)..]);
            return cursor.Id.Length is > 0 and < 64;
        }
        catch (FormatException) { return false; }
    }

    public static ProblemHttpResult? ParseLimit(string? raw, out int limit)
    {
        limit = 24;
        if (raw is null) return null;
        if (!int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > 100)
            return Problems.Field("limit", "limit must be an integer from 1 to 100.");
        return null;
    }
}
