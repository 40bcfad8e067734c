#!/usr/bin/env python3
"""Writes N distinct PNG photos (gradients with a disc) using only the standard library."""
import struct, sys, zlib, os, random

def png(width, height, seed):
    r = random.Random(seed)
    c1 = [r.randrange(256) for _ in range(3)]
    c2 = [r.randrange(256) for _ in range(3)]
    disc = [r.randrange(256) for _ in range(3)]
    cx, cy, rad = width // 2 + r.randrange(-20, 20), height // 3, min(width, height) // 4
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            t = (x + y) / (width + height)
            px = disc if (x - cx) ** 2 + (y - cy) ** 2 < rad * rad else [int(a + (b - a) * t) for a, b in zip(c1, c2)]
            rows.extend(px)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b""))

if __name__ == "__main__":
    folder, count = sys.argv[1], int(sys.argv[2])
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        with open(os.path.join(folder, f"photo{i:02d}.png"), "wb") as f:
            f.write(png(256, 320, i))
