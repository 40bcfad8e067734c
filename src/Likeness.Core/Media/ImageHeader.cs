using System.Buffers.Binary;

namespace Likeness.Core.Media;

/// <summary>Reads an image's size from its header alone, so a decompression bomb is refused before any decoding.</summary>
public static class ImageHeader
{
    public static (int Width, int Height)? TryReadSize(ReadOnlySpan<byte> b, string format) => format switch
    {
        "png" => Png(b),
        "jpeg" => Jpeg(b),
        "webp" => Webp(b),
        _ => null,
    };

    private static (int, int)? Png(ReadOnlySpan<byte> b)
    {
        // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
        // Only a well-formed IHDR (length 13, matching CRC) is believed; anything else is left to the decoder to refuse.
        if (b.Length < 33 || !b[12..16].SequenceEqual("IHDR"u8) || BinaryPrimitives.ReadUInt32BigEndian(b[8..]) != 13) return null;
        if (Crc32(b[12..29]) != BinaryPrimitives.ReadUInt32BigEndian(b[29..])) return null;
        var w = BinaryPrimitives.ReadUInt32BigEndian(b[16..]);
        var h = BinaryPrimitives.ReadUInt32BigEndian(b[20..]);
        return w > int.MaxValue || h > int.MaxValue ? (int.MaxValue, int.MaxValue) : ((int)w, (int)h);
    }

    private static (int, int)? Jpeg(ReadOnlySpan<byte> b)
    {
        var i = 2;
        while (i + 4 <= b.Length)
        {
            if (b[i] != 0xFF) return null;
            var marker = b[i + 1];
            if (marker == 0xFF) { i++; continue; }
            if (marker is 0xD8 or 0x01 || marker is >= 0xD0 and <= 0xD7) { i += 2; continue; }
            var length = BinaryPrimitives.ReadUInt16BigEndian(b[(i + 2)..]);
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                if (i + 9 > b.Length) return null;
                int h = BinaryPrimitives.ReadUInt16BigEndian(b[(i + 5)..]);
                int w = BinaryPrimitives.ReadUInt16BigEndian(b[(i + 7)..]);
                return (w, h);
            }
            i += 2 + length;
        }
        return null;
    }

    private static (int, int)? Webp(ReadOnlySpan<byte> b)
    {
        if (b.Length < 30) return null;
        var chunk = b[12..16];
        if (chunk.SequenceEqual("VP8X"u8))
        {
            var w = 1 + (b[24] | b[25] << 8 | b[26] << 16);
            var h = 1 + (b[27] | b[28] << 8 | b[29] << 16);
            return (w, h);
        }
        if (chunk.SequenceEqual("VP8L"u8))
        {
            if (b[20] != 0x2F) return null;
            var bits = BinaryPrimitives.ReadUInt32LittleEndian(b[21..]);
            return ((int)(bits & 0x3FFF) + 1, (int)((bits >> 14) & 0x3FFF) + 1);
        }
        if (chunk.SequenceEqual("VP8 "u8))
        {
            // Frame tag (3) then start code 9D 01 2A, then 14-bit width and height.
            if (b[23] != 0x9D || b[24] != 0x01 || b[25] != 0x2A) return null;
            return (BinaryPrimitives.ReadUInt16LittleEndian(b[26..]) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(b[28..]) & 0x3FFF);
        }
        return null;
    }

    /// <summary>The CRC-32 that PNG chunks carry over their type and data.</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var x in data)
        {
            crc ^= x;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }
}
