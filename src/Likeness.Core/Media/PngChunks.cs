using System.Buffers.Binary;

namespace Likeness.Core.Media;

/// <summary>
/// Walks a PNG's chunk headers (length, type) without reading their data, before any decoder sees the file. A chunk
/// whose length runs past the end of the file is damage; ancillary chunks (text, ICC profile, EXIF, private ones —
/// the type's first letter in lower case) are bounded in size and number, because the decoder reads, checks and may
/// inflate every one of them, and a few megabytes of them cost seconds of CPU (issue #11) for nothing the pipeline
/// keeps: metadata is dropped when a photo is normalised.
/// </summary>
public static class PngChunks
{
    /// <summary>One ancillary chunk: an ICC profile or an XMP packet is tens of KiB; 1 MiB leaves room for odd ones.</summary>
    public const int MaxAncillaryChunkBytes = 1024 * 1024;
    /// <summary>Every ancillary chunk together.</summary>
    public const int MaxAncillaryBytes = 2 * 1024 * 1024;
    /// <summary>Ancillary chunks in one file (encoders write a handful).</summary>
    public const int MaxAncillaryChunks = 256;

    private const int SignatureBytes = 8;
    private const int ChunkOverheadBytes = 12; // length, type, CRC

    /// <summary>Throws <see cref="MediaValidationException"/> when the chunk structure is damaged or carries too much metadata.</summary>
    public static void Check(Stream png)
    {
        Span<byte> header = stackalloc byte[8];
        long position = SignatureBytes;
        long ancillaryBytes = 0;
        var ancillaryChunks = 0;
        var length = png.Length;
        while (true)
        {
            // A file that stops between chunks or inside a chunk header is left to the decoder to judge.
            if (position + 8 > length) return;
            png.Position = position;
            if (png.ReadAtLeast(header, 8, throwOnEndOfStream: false) < 8) return;
            var dataLength = BinaryPrimitives.ReadUInt32BigEndian(header);
            var type = header[4..8];
            if (dataLength > int.MaxValue || position + ChunkOverheadBytes + dataLength > length)
                throw new MediaValidationException(MediaCodes.Unsupported,
                    $"The PNG's '{TypeName(type)}' chunk claims {dataLength} bytes, more than the file holds.");
            if (type.SequenceEqual("IEND"u8)) return;
            if (IsAncillary(type))
            {
                if (dataLength > MaxAncillaryChunkBytes)
                    throw new MediaValidationException(MediaCodes.MetadataTooLarge,
                        $"The PNG's '{TypeName(type)}' metadata chunk is {dataLength} bytes; at most {MaxAncillaryChunkBytes} are accepted.");
                ancillaryBytes += dataLength;
                if (++ancillaryChunks > MaxAncillaryChunks || ancillaryBytes > MaxAncillaryBytes)
                    throw new MediaValidationException(MediaCodes.MetadataTooLarge,
                        $"The PNG carries more than {MaxAncillaryChunks} metadata chunks or {MaxAncillaryBytes} bytes of them.");
            }
            position += ChunkOverheadBytes + dataLength;
        }
    }

    /// <summary>Bit 5 of the first type byte (a lower-case letter) marks a chunk a decoder may skip.</summary>
    private static bool IsAncillary(ReadOnlySpan<byte> type) => (type[0] & 0x20) != 0;

    private static string TypeName(ReadOnlySpan<byte> type)
    {
        Span<char> name = stackalloc char[4];
        for (var i = 0; i < 4; i++) name[i] = type[i] is >= 0x21 and <= 0x7E ? (char)type[i] : '?';
        return new string(name);
    }
}
