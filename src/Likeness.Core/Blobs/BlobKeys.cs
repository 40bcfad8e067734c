namespace Likeness.Core.Blobs;

/// <summary>Where each artefact lives in the blob store.</summary>
public static class BlobKeys
{
    /// <summary>Every LoRA's blobs are under this root, then its id: what the orphan sweeper walks.</summary>
    public const string LorasRoot = "loras/";
    /// <summary>Every generation's images are under this root, then its id.</summary>
    public const string GenerationsRoot = "generations/";
    public static string LoraPrefix(string loraId) => $"{LorasRoot}{loraId}/";
    public static string Photo(string loraId, int index, string extension) => $"loras/{loraId}/photos/{index:000}.{extension}";
    public static string PhotosPrefix(string loraId) => $"loras/{loraId}/photos/";
    public static string Dataset(string loraId) => $"loras/{loraId}/dataset.zip";
    public static string Adapter(string loraId) => $"loras/{loraId}/adapter.safetensors";
    public static string GenerationPrefix(string generationId) => $"{GenerationsRoot}{generationId}/";
    public static string GeneratedImage(string generationId, int index, string extension) => $"generations/{generationId}/{index}.{extension}";
}
