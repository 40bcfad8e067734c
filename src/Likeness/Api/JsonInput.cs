using System.Text.Json;

namespace Likeness.Api;

/// <summary>
/// System.Text.Json reads strings lazily: invalid UTF-8 inside a string, or an escaped lone surrogate (<c>"\ud800"</c>),
/// passes the parse and throws only when the string is read. A request's JSON is checked whole, once, before any of
/// its fields is read, so that such text is the client's 400 and not the server's 500.
/// </summary>
public static class JsonInput
{
    /// <summary>Whether every property name and string value below <paramref name="element"/> is valid Unicode text.</summary>
    public static bool HasValidText(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                    if (!Reads(() => property.Name) || !HasValidText(property.Value)) return false;
                return true;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                    if (!HasValidText(item)) return false;
                return true;
            case JsonValueKind.String:
                return Reads(element.GetString);
            default:
                return true;
        }
    }

    private static bool Reads(Func<string?> read)
    {
        try
        {
            _ = read();
            return true;
        }
        catch (InvalidOperationException) { return false; }
    }
}
