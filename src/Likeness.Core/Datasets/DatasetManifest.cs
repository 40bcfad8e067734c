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

public sealed record DatasetManifestItem(string Image, string Caption, int Width, int Height);

/// <summary>One photo of a dataset with its final caption.</summary>
public sealed record DatasetItem(byte[] Jpeg, string Caption, int Width, int Height);
