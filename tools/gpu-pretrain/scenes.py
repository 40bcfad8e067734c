"""The engine's scene composer (src/Likeness.Engine/Pretraining/SceneComposer.cs and EmojiCatalog.cs) on the GPU:
the same catalogue and held-out objects, the same backgrounds, sizes, places and caption grammar, drawn for a whole
batch at once with tensor operations. It draws from torch's and Python's generators, not .NET's, so its scenes are
the same kind of scenes as the engine's, not the same scenes."""

import json
import os
import random

import torch
import torch.nn.functional as F

# Backdrop.NamedColours, Backdrop.Sizes, Backdrop.Place (src/Shared/Backdrop.cs).
COLOURS = [("red", (214, 40, 40)), ("orange", (245, 140, 30)), ("yellow", (246, 214, 52)), ("green", (56, 168, 72)),
           ("teal", (26, 158, 160)), ("blue", (40, 92, 222)), ("purple", (128, 58, 190)), ("pink", (240, 128, 180)),
           ("brown", (128, 80, 40)), ("black", (24, 24, 24)), ("white", (246, 246, 246)), ("gray", (128, 128, 128))]
SIZES = [("small", 0.36), ("mid-sized", 0.56), ("big", 0.8)]
ROWS, COLUMNS = ["top", "middle", "bottom"], ["left", "centre", "right"]
TONES = {"1f3fb": "light", "1f3fc": "medium-light", "1f3fd": "medium", "1f3fe": "medium-dark", "1f3ff": "dark"}
HOLD_OUT_ONE_IN = 10


def place(row, column):
    if (row, column) == (1, 1):
        return "in the centre"
    if row == 1:
        return f"on the {COLUMNS[column]}"
    if column == 1:
        return f"at the {ROWS[row]}"
    return f"at the {ROWS[row]} {COLUMNS[column]}"


def is_held_out(base):
    h = 2166136261
    for c in base:
        h = ((h ^ ord(c)) * 16777619) & 0xFFFFFFFF
    return h % HOLD_OUT_ONE_IN == 0


def catalog(folder):
    """[(code, base, name, tone, file)] as EmojiCatalog.Load reads them."""
    assets = os.path.join(folder, "assets")
    files = {os.path.splitext(f)[0].lower(): os.path.join(assets, f) for f in os.listdir(assets) if f.endswith(".webp")}

    def find(code):
        return files.get(code) or files.get(code.replace("-fe0f", ""))

    entries = []
    for e in json.load(open(os.path.join(folder, "emoji.json"), encoding="utf-8")):
        if e["category"] in ("Component", "Flags"):
            continue
        unified = e["unified"].lower()
        name = e["name"].lower().replace("_", " ").strip()
        if find(unified):
            entries.append((unified, unified, name, None, find(unified)))
        for key, v in (e.get("skin_variations") or {}).items():
            code = v["unified"].lower()
            tones = [TONES.get(t) for t in key.lower().split("-")]
            if any(t is None for t in tones) or not find(code):
                continue
            distinct = list(dict.fromkeys(tones))
            tone = distinct[0] + " skin" if len(distinct) == 1 else " and ".join(distinct) + " skin"
            entries.append((code, unified, name, tone, find(code)))
    return sorted(entries, key=lambda x: x[0])


def describe(entry):
    return entry[2] if entry[3] is None else f"{entry[2]} with {entry[3]}"


class Composer:
    """Scenes of `size` px from the given catalogue entries, drawn on `device`."""

    LEVELS = (64, 96, 128)

    def __init__(self, entries, size, device):
        from PIL import Image

        self.entries, self.size, self.device = entries, size, device
        by_base = {}
        for i, e in enumerate(entries):
            by_base.setdefault(e[1], []).append(i)
        self.by_base = list(by_base.values())
        # The renders, premultiplied RGBA, at three sizes: each object is resampled from the smallest at least as big
        # as it is drawn, so that bilinear sampling never shrinks by more than 1.5 (no aliasing to speak of).
        self.atlas = {}
        decoded = [Image.open(e[4]).convert("RGBA") for e in entries]
        for level in self.LEVELS:
            arr = torch.stack([torch.frombuffer(bytearray(im.resize((level, level), Image.BICUBIC).tobytes()), dtype=torch.uint8)
                               for im in decoded]).view(-1, level, level, 4).permute(0, 3, 1, 2)
            rgba = arr.to(device).float() / 255
            rgba[:, :3] *= rgba[:, 3:4]
            self.atlas[level] = rgba.half()
        self.colours = torch.tensor([c for _, c in COLOURS], dtype=torch.float32, device=device)

    def pick(self, rng):
        variants = self.by_base[rng.randrange(len(self.by_base))]
        return variants[rng.randrange(len(variants))]

    def plan(self, rng, n):
        """Everything random about n scenes: (captions, background spec, objects [(scene, entry, cx, cy, side, mirrored)])."""
        captions, backgrounds, objects = [], [], []
        for s in range(n):
            a = rng.randrange(12)
            b = (a + 1 + rng.randrange(11)) % 12
            va = [rng.randint(-14, 14) for _ in range(3)]
            vb = [rng.randint(-14, 14) for _ in range(3)]
            kind_draw = rng.random()
            na, nb = COLOURS[a][0], COLOURS[b][0]
            vertical, cells = rng.random() < 0.5, 6 + rng.randrange(5)
            if kind_draw < 0.55:
                kind, phrase = 0, f"a {na} background"
            elif kind_draw < 0.7:
                kind, phrase = 1, f"a {na} to {nb} gradient"
            elif kind_draw < 0.8:
                kind, phrase = 2, f"{na} and {nb} stripes"
            elif kind_draw < 0.9:
                kind, phrase = 3, f"a {na} background with {nb} dots"
            else:
                kind, phrase = 4, f"a {na} and {nb} checkerboard"
            backgrounds.append((a, b, *va, *vb, kind, int(vertical), cells))
            size = self.size
            if rng.random() < 0.75:
                entry = self.pick(rng)
                word, fraction = SIZES[rng.randrange(3)]
                side = fraction * size
                row, column = (1, 1) if word == "big" else (rng.randrange(3), rng.randrange(3))
                cx = side / 2 + column * (size - side) / 2 + (rng.random() * 2 - 1) * size * 0.04
                cy = side / 2 + row * (size - side) / 2 + (rng.random() * 2 - 1) * size * 0.04
                objects.append((s, entry, cx, cy, side, rng.random() < 0.3))
                captions.append(f"a photo of a {word} {describe(self.entries[entry])} on {phrase}, {place(row, column)}")
            else:
                pair, words = [self.pick(rng), self.pick(rng)], []
                for i, entry in enumerate(pair):
                    big = rng.random() < 0.5
                    words.append("mid-sized" if big else "small")
                    side = (0.48 if big else 0.34) * size
                    cx = (0.26 if i == 0 else 0.74) * size + (rng.random() * 2 - 1) * size * 0.03
                    cy = size * (0.3 + 0.4 * rng.random())
                    objects.append((s, entry, cx, cy, side, rng.random() < 0.3))
                captions.append(f"a photo of a {words[0]} {describe(self.entries[pair[0]])} (left) and a {words[1]} "
                                f"{describe(self.entries[pair[1]])} (right) on {phrase}")
        return captions, backgrounds, objects

    def backgrounds(self, spec):
        size, dev = self.size, self.device
        spec = torch.tensor(spec, dtype=torch.float32, device=dev)
        a, b = spec[:, 0].long(), spec[:, 1].long()
        ca = ((self.colours[a] + spec[:, 2:5]).clamp(0, 255) / 255)[:, :, None, None]
        cb = ((self.colours[b] + spec[:, 5:8]).clamp(0, 255) / 255)[:, :, None, None]
        kind, vertical, cell = spec[:, 8].long(), spec[:, 9][:, None, None], (size / spec[:, 10])[:, None, None]
        p = torch.arange(size, dtype=torch.float32, device=dev) + 0.5
        py, px = p[None, :, None].expand(1, size, size), p[None, None, :].expand(1, size, size)
        along = torch.where(vertical > 0, py, px)  # the gradient's and the stripes' axis
        gradient = along / size
        stripes = (torch.floor(along / cell) % 2 == 0).float()
        dx = px - (torch.floor(px / cell) + 0.5) * cell
        dy = py - (torch.floor(py / cell) + 0.5) * cell
        dots = (cell * 0.28 - torch.sqrt(dx * dx + dy * dy) + 0.5).clamp(0, 1)
        checker = ((torch.floor(px / cell) + torch.floor(py / cell)) % 2 == 1).float()
        share = torch.zeros(len(spec), size, size, device=dev)
        for k, m in ((1, gradient), (2, stripes), (3, dots), (4, checker)):
            share = torch.where((kind == k)[:, None, None], m.expand_as(share), share)
        return ca + (cb - ca) * share[:, None]

    def level(self, side):
        return next((l for l in self.LEVELS if l >= side), self.LEVELS[-1])

    def draw(self, canvas, objects):
        """Objects (scene, entry, cx, cy, side, mirrored, first) over the canvas: each scene's first object before its
        second, so that the right one lies over the left."""
        size = self.size
        for first in (True, False):
            for level in self.LEVELS:
                group = [o for o in objects if o[6] == first and self.level(o[4]) == level]
                if not group:
                    continue
                scene = torch.tensor([o[0] for o in group], device=self.device)
                entry = torch.tensor([o[1] for o in group], device=self.device)
                cx, cy, side, mirrored = (torch.tensor([float(o[i]) for o in group], device=self.device) for i in (2, 3, 4, 5))
                # Canvas coordinate u in [-1, 1] maps to the render's (u*size + size - 2c) / side, mirrored by a sign.
                sign = 1 - 2 * mirrored
                theta = torch.zeros(len(group), 2, 3, device=self.device)
                theta[:, 0, 0] = size / side * sign
                theta[:, 0, 2] = (size - 2 * cx) / side * sign
                theta[:, 1, 1] = size / side
                theta[:, 1, 2] = (size - 2 * cy) / side
                grid = F.affine_grid(theta, [len(group), 4, size, size], align_corners=False)
                rgba = F.grid_sample(self.atlas[level][entry].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
                canvas[scene] = rgba[:, :3] + (1 - rgba[:, 3:4]) * canvas[scene]
        return canvas

    def batch(self, rng, n):
        """n scenes: images [n, 3, size, size] in [−1, 1] and their captions."""
        captions, spec, objects = self.plan(rng, n)
        seen, tagged = set(), []
        for o in objects:
            tagged.append(o + (o[0] not in seen,))
            seen.add(o[0])
        return self.draw(self.backgrounds(spec), tagged) * 2 - 1, captions
