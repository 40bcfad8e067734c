using System.Net.Http.Headers;

namespace Likeness.Tests.Infrastructure;

/// <summary>Builds the multipart body of POST /v2/loras.</summary>
public static class LoraForms
{
    public static MultipartFormDataContent Create(IEnumerable<byte[]> images, IDictionary<string, string>? fields = null, string extension = "png")
    {
        var form = new MultipartFormDataContent();
        var defaults = new Dictionary<string, string>
        {
            ["name"] = "Test subject", ["subjectKind"] = "object", ["steps"] = LikenessServer.TestMinSteps.ToString(), ["loraRank"] = "8",
        };
        if (fields is not null) foreach (var (k, v) in fields) defaults[k] = v;
        foreach (var (k, v) in defaults)
            if (v is not null) form.Add(new StringContent(v), k);
        var i = 0;
        foreach (var image in images)
        {
            var part = new ByteArrayContent(image);
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(part, "images", $"photo{++i}.{extension}");
        }
        return form;
    }
}
