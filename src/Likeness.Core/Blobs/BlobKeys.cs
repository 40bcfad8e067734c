namespace Likeness.Core.Blobs;

/// <summary>Where each artefact lives in the blob store.</summary>
public static class BlobKeys
{
    public static string LoraPrefix(string loraId) => $"loras/{loraId}/";
    public static string Photo(string loraId, int index, string extension) => $"loras/{loraId}/photos/{index:000}.{extension}";
    public static string PhotosPrefix(string loraId) => $"loras/{loraId}/photos/";
    public static string Dataset(string loraId) => $"loras/{loraId}/dataset.zip";
    public static string Adapter(string loraId) => $"loras/{loraId}/adapter.safetensors";
    public static string GenerationPrefix(string generationId) => $"generations/{generationId}/";
    public static string GeneratedImage(string generationId, int index, string extension) => $"generations/{generationId}/{index}.{extension}";
}
