#!/usr/bin/env python3
"""Writes a dataset zip in the pipeline's layout (manifest.json + NNN.jpg + NNN.txt) from generated photos.
The images are PNG-encoded (the engine judges images by content, not by name); standard library only."""
import importlib.util, io, json, os, sys, zipfile

spec = importlib.util.spec_from_file_location("pngs", os.path.join(os.path.dirname(__file__), "make-pngs.py"))
pngs = importlib.util.module_from_spec(spec); spec.loader.exec_module(pngs)

path, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15
items = []
with zipfile.ZipFile(path, "w") as z:
    for i in range(count):
        name = f"{i + 1:03d}"
        caption = f"a photo of BENCH object, number {i}, studio light"
        z.writestr(name + ".jpg", pngs.png(256, 320, i))
        z.writestr(name + ".txt", caption)
        items.append({"image": name + ".jpg", "caption": caption, "width": 256, "height": 320})
    z.writestr("manifest.json", json.dumps({"triggerWord": "BENCH", "subject": {"kind": "object"}, "baseModel": "flux-tiny", "items": items}))
