using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Likeness.Core.Common;

namespace Likeness.Api;

/// <summary>Writes every DateTime as ISO-8601 UTC with milliseconds.</summary>
public sealed class UtcMillisecondsConverter : JsonConverter<DateTime>
{
    public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        DateTime.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);

    public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Timestamps.Format(value));
}
