"""Writes the fixture that ties this PyTorch port to the engine: fixed inputs and what fluxtiny.py computes from them
(in float64) with a flux-tiny weights folder — the autoencoder's latent, the text encoders' outputs and the
transformer's prediction. tests/Likeness.Engine.Tests/GpuPretrainParityTests.cs checks that the engine computes the
same; rerun this when the shipped weights change:

    python3 tools/gpu-pretrain/parity.py src/Likeness.Engine/Weights/flux-tiny \
        tests/Likeness.Engine.Tests/Data/gpu-pretrain-parity/reference.safetensors"""

import hashlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fluxtiny as ft  # noqa: E402

PROMPTS = ["a photo of a big red apple on a teal background, in the centre", ""]


def main(weights, output):
    nets, _ = ft.load_folder(weights)
    ae, flux, clip, t5 = nets["ae"], nets["transformer"], nets["clip"], nets["t5"]
    for m in (ae, flux, clip, t5):
        m.double().eval()
    g = torch.Generator().manual_seed(20261127)
    image = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    noise = torch.randn(2, 16, 8, 8, generator=g)
    t = torch.tensor([0.3, 0.8])
    guidance = torch.tensor([1.5, 4.0])
    with torch.no_grad():
        latent = ae(image.double())
        txt = t5(torch.tensor([ft.t5_ids(p) for p in PROMPTS]))
        vec = clip(torch.tensor([ft.clip_ids(p) for p in PROMPTS]))
        xt = latent + t.double().view(-1, 1, 1, 1) * (noise.double() - latent)
        pe = tuple(p.double() for p in ft.rope_angles(torch.cat([torch.zeros(1, ft.T5_TOKENS, 3), ft.image_ids(8, 8)], 1)))
        pred = flux(ft.pack(xt), txt, t.double(), vec, guidance.double(), pe)
    digest = hashlib.sha256(open(os.path.join(weights, "transformer.safetensors"), "rb").read()).hexdigest()
    tensors = {"image": image, "noise": noise, "t": t, "guidance": guidance,
               "latent": latent.float(), "txt": txt.float(), "vec": vec.float(), "pred": pred.float()}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    ft.save_safetensors(output, tensors, {"transformer_sha256": digest, "prompt_0": PROMPTS[0], "prompt_1": PROMPTS[1],
                                          "made_by": "tools/gpu-pretrain/parity.py"})
    print(f"{output}: transformer {digest[:12]}…, pred max {pred.abs().max().item():.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
