namespace Likeness.Core.Media;

/// <summary>The API's stable error codes for a refused image (API.md), as <see cref="MediaValidationException.Code"/>.</summary>
public static class MediaCodes
{
    public const string TooLarge = "image_too_large";
    public const string Unsupported = "unsupported_image";
    public const string TooSmall = "image_too_small";
    public const string TooManyPixels = "image_too_many_pixels";
    /// <summary>A PNG whose ancillary (metadata) chunks pass <see cref="PngChunks"/>' limits: refused before decoding.</summary>
    public const string MetadataTooLarge = "image_metadata_too_large";
}
