using Likeness.Core.Data;

namespace Likeness.Core.Tests;

/// <summary>The hot reads' SQLite timestamp parser reads EF Core's text form exactly as the general parser does, and nothing else.</summary>
public sealed class SqliteTimestampTests
{
    [Theory]
    [InlineData("2026-11-27 09:00:00")]
    [InlineData("2026-11-27 09:00:00.5")]
    [InlineData("2026-11-27 23:59:59.1234567")]
    [InlineData("2024-02-29 00:00:00.000001")]
    [InlineData("0001-01-01 00:00:00")]
    public void Reads_efs_form_as_the_general_parser_does(string text)
    {
        var expected = DateTime.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(expected, SqliteHotReadSession.ParseTimestamp(text));
    }

    [Fact]
    public void Reads_back_what_efs_format_writes_to_the_tick()
    {
        var at = new DateTime(2026, 11, 27, 9, 0, 0);
        foreach (var ticks in new long[] { 0, 1, 10, 1234567, 5_000_000, 9_999_999 })
        {
            var value = at.AddTicks(ticks);
            Assert.Equal(value, SqliteHotReadSession.ParseTimestamp(value.ToString(@"yyyy\-MM\-dd HH\:mm\:ss.FFFFFFF", System.Globalization.CultureInfo.InvariantCulture)));
        }
    }

    [Theory]
    [InlineData("2026-11-27T09:00:00")]
    [InlineData("2026-11-27 09:00:00.")]
    [InlineData("2026-11-27 09:00:00.12345678")]
    [InlineData("2026-02-30 09:00:00")]
    [InlineData("2026-11-27 24:00:00")]
    [InlineData("2026-11-27 09:00")]
    [InlineData("2026-11-27 09:00:00Z")]
    [InlineData("+026-11-27 09:00:00")]
    public void Leaves_any_other_text_to_the_general_parser(string text) => Assert.Null(SqliteHotReadSession.ParseTimestamp(text));
}
