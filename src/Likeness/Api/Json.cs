using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Likeness.Core.Common;

namespace Likeness.Api;

/// <summary>The API's wire format, the same for the server and <c>likeness</c>'s client verbs.</summary>
public static class ApiJson
{
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions o)
    {
        o.Converters.Add(new UtcMillisecondsConverter());
        o.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        o.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        // Numbers are numbers on the wire (and in the OpenAPI schemas), never also strings.
        o.NumberHandling = JsonNumberHandling.Strict;
        return o;
    }
}

/// <summary>Writes every DateTime as ISO-8601 UTC with milliseconds.</summary>
public sealed class UtcMillisecondsConverter : JsonConverter<DateTime>
{
    public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        DateTime.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);

    public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Timestamps.Format(value));
}
