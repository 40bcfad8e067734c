using System.Text.Json;
using System.Text.Json.Serialization;

namespace Likeness.Core.Datasets;

/// <summary>The dataset zip's <c>manifest.json</c>: the contract between the pipeline and any trainer.</summary>
public sealed record DatasetManifest(
    string TriggerWord,
    DatasetSubject Subject,
    string BaseModel,
    IReadOnlyList<DatasetManifestItem> Items)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };
}

public sealed record DatasetSubject(string Kind, string? Gender, string? Ethnicity, string? Age);

/// <param name="Source">The captioner that described the photo (<c>local</c>, <c>openai</c>): with a fallback, items of one
/// dataset may differ. Null in datasets written before sources were recorded.</param>
public sealed record DatasetManifestItem(string Image, string Caption, int Width, int Height, string? Source);

/// <summary>One photo of a dataset with its final caption and the captioner it came from.</summary>
public sealed record DatasetItem(byte[] Jpeg, string Caption, int Width, int Height, string Source);
