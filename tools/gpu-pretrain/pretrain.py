"""Continues flux-tiny's pretraining on a GPU: the transformer and the tiny text encoders, by flow matching with the
engine's conventions (TransformerPretrainer.cs: x_t = (1 - t)·x0 + t·ε, half of t uniform and half sigmoid(N(0, 1)),
target ε - x0, MSE; one caption in ten dropped; guidance input drawn from [1, 5]; AdamW; gradients clipped to norm 1;
the weights written are an exponential moving average), on scenes composed and encoded on the GPU by the frozen
autoencoder. Starts from a flux-tiny weights folder and writes one (fp16, the same keys) that the engine loads.

    python3 tools/gpu-pretrain/pretrain.py --emoji data/emoji --weights src/Likeness.Engine/Weights/flux-tiny \
        --out /tmp/flux-tiny-gpu --minutes 6

Runs on the CPU too (slowly; for checking the script)."""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fluxtiny as ft  # noqa: E402
import scenes  # noqa: E402

def main():
    a = argparse.ArgumentParser()
    a.add_argument("--emoji", required=True)
    a.add_argument("--weights", required=True, help="the flux-tiny weights folder to start from")
    a.add_argument("--out", required=True)
    a.add_argument("--minutes", type=float, default=6.0, help="training time (the pool and the evaluations come on top)")
    a.add_argument("--batch", type=int, default=1024)
    a.add_argument("--lr", type=float, default=6e-4)
    a.add_argument("--warmup", type=int, default=200)
    a.add_argument("--ema", type=float, default=0.999)
    a.add_argument("--pool", type=int, default=400_000, help="scenes composed and encoded before training")
    a.add_argument("--pool-seconds", type=float, default=90)
    a.add_argument("--eval-scenes", type=int, default=1024)
    a.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: by time alone)")
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--save-every", type=float, default=60, help="seconds between snapshots of the averaged weights")
    a.add_argument("--with-ae", action="store_true", help="copy the (unchanged) autoencoder too, for a complete folder")
    o = a.parse_args()

    start = time.time()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(o.seed)
    rng = random.Random(o.seed)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    os.makedirs(o.out, exist_ok=True)
    log = open(os.path.join(o.out, "log.txt"), "a")

    def say(*parts):
        line = f"[{time.time() - start:7.1f}s] " + " ".join(str(p) for p in parts)
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    say("device", torch.cuda.get_device_name() if cuda else "cpu", "torch", torch.__version__)
    nets, meta = ft.load_folder(o.weights)
    ae = nets.pop("ae").to(device).eval().requires_grad_(False)
    if cuda:
        ae = ae.to(memory_format=torch.channels_last)
    modules = nets  # the transformer and the text encoders: what trains
    provenance = meta["transformer"]
    for m in modules.values():
        m.to(device).train()
    params = [p for m in modules.values() for p in m.parameters()]
    averages = [p.detach().clone() for p in params]
    say("parameters", sum(p.numel() for p in params))

    entries = scenes.catalog(o.emoji)
    training = [e for e in entries if not scenes.is_held_out(e[1])]
    held_out = [e for e in entries if scenes.is_held_out(e[1])]
    composer = scenes.Composer(training, ft.RESOLUTION, device)
    held_composer = scenes.Composer(held_out, ft.RESOLUTION, device)
    say("renders", len(entries), "training", len(training), "held out", len(held_out))

    def encode_scenes(comp, n, seconds=None, chunk=1024):
        """n scenes (fewer if `seconds` run out first): latents (fp16), T5 and CLIP ids, captions."""
        started = time.time()
        lat, t5, clip, captions = [], [], [], []
        for done in range(0, n, chunk):
            images, caps = comp.batch(rng, min(chunk, n - done))
            with torch.no_grad(), autocast:
                x = images.to(memory_format=torch.channels_last) if cuda else images
                lat.append(ae(x).float().half())
            t5.append(torch.tensor([ft.t5_ids(c) for c in caps], dtype=torch.int16))
            clip.append(torch.tensor([ft.clip_ids(c) for c in caps], dtype=torch.int16))
            captions += caps
            if seconds is not None and time.time() - started > seconds:
                break
        return torch.cat(lat), torch.cat(t5).to(device), torch.cat(clip).to(device), captions

    eval_train = encode_scenes(composer, o.eval_scenes)
    eval_held = encode_scenes(held_composer, o.eval_scenes)
    pool_started = time.time()
    pool_lat, pool_t5, pool_clip, pool_captions = encode_scenes(composer, o.pool, o.pool_seconds)
    say(f"pool: {len(pool_lat)} scenes in {time.time() - pool_started:.1f} s; latent std {pool_lat.float().std().item():.3f}")
    with open(os.path.join(o.out, "captions-sample.txt"), "w") as f:
        f.write("\n".join(pool_captions[:200]) + "\n")
    empty_t5 = torch.tensor(ft.t5_ids(""), device=device)
    empty_clip = torch.tensor(ft.clip_ids(""), device=device)
    pe = ft.positions(16, 16, device)

    def predict(x0, t5_ids, clip_ids, t, noise, guidance):
        xt = x0 + t.view(-1, 1, 1, 1) * (noise - x0)
        with autocast:
            txt = modules["t5"](t5_ids.long())
            vec = modules["clip"](clip_ids.long())
            pred = modules["transformer"](ft.pack(xt), txt, t, vec, guidance, pe)
        return F.mse_loss(pred.float(), ft.pack(noise - x0))

    def evaluate(data):
        """The mean loss at t = 0.1, 0.3, …, 0.9 with fixed noise, guidance 3, the averaged weights."""
        lat, t5, clip, _ = data
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, avg in zip(params, averages):
                p.copy_(avg)
            gen = torch.Generator(device=device).manual_seed(1234)
            total, count = 0.0, 0
            for tv in (0.1, 0.3, 0.5, 0.7, 0.9):
                for i in range(0, len(lat), 256):
                    x0 = lat[i:i + 256].float()
                    noise = torch.randn(x0.shape, generator=gen, device=device)
                    t = torch.full((len(x0),), tv, device=device)
                    total += predict(x0, t5[i:i + 256], clip[i:i + 256], t, noise, torch.full_like(t, 3.0)).item() * len(x0)
                    count += len(x0)
            for p, v in zip(params, live):
                p.copy_(v)
        return total / count

    before = {"train_objects": evaluate(eval_train), "held_out_objects": evaluate(eval_held)}
    say("evaluation before", json.dumps(before))

    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                                  **({"fused": True} if cuda else {}))
    budget = o.minutes * 60
    losses = open(os.path.join(o.out, "loss.csv"), "w")
    train_start, last_save, step, running = time.time(), time.time(), 0, []
    n = len(pool_lat)

    def snapshot(tag):
        save(o.out, modules, params, averages, provenance, step, o, tag)

    while True:
        elapsed = time.time() - train_start
        if elapsed >= budget or (o.max_steps and step >= o.max_steps):
            break
        progress = min(1.0, elapsed / budget)
        lr = o.lr * (step + 1) / o.warmup if step < o.warmup else o.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in optimizer.param_groups:
            g["lr"] = lr
        b = o.batch
        index = torch.randint(0, n, (b,), device=device)
        x0 = pool_lat[index].float()
        drop = (torch.rand(b, device=device) < 0.1)[:, None]
        t5_ids = torch.where(drop, empty_t5[None].to(pool_t5.dtype), pool_t5[index])
        clip_ids = torch.where(drop, empty_clip[None].to(pool_clip.dtype), pool_clip[index])
        t = torch.where(torch.rand(b, device=device) < 0.5, torch.rand(b, device=device), torch.sigmoid(torch.randn(b, device=device)))
        guidance = 1 + 4 * torch.rand(b, device=device)
        optimizer.zero_grad(set_to_none=True)
        try:
            loss = predict(x0, t5_ids, clip_ids, t, torch.randn_like(x0), guidance)
            loss.backward()
        except torch.cuda.OutOfMemoryError:
            if step > 0 or o.batch <= 64:
                raise
            o.batch //= 2  # the first step tells whether the batch fits; halve it until it does
            say("out of memory: batch", o.batch)
            torch.cuda.empty_cache()
            continue
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(o.ema, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            if hasattr(torch, "_foreach_lerp_"):
                torch._foreach_lerp_(averages, [p.detach() for p in params], 1 - decay)
            else:
                for avg, p in zip(averages, params):
                    avg.lerp_(p.detach(), 1 - decay)
        step += 1
        if step % 25 == 0:
            value = loss.item()
            running.append(value)
            losses.write(f"{step},{value:.6g}\n")
            if step % 250 == 0:
                losses.flush()
                rate = step / (time.time() - train_start)
                say(f"step {step} loss {sum(running[-10:]) / len(running[-10:]):.4f} lr {lr:.2e} {rate:.1f} steps/s "
                    f"{rate * b:.0f} samples/s")
        if time.time() - last_save > o.save_every:
            snapshot("snapshot")
            last_save = time.time()
    losses.close()
    trained = time.time() - train_start
    after = {"train_objects": evaluate(eval_train), "held_out_objects": evaluate(eval_held)}
    say("evaluation after", json.dumps(after))
    snapshot("final")
    if o.with_ae:
        shutil.copyfile(os.path.join(o.weights, ft.WEIGHT_FILES["ae"]), os.path.join(o.out, ft.WEIGHT_FILES["ae"]))
    summary = {"steps": step, "batch": o.batch, "samples": step * o.batch, "train_seconds": round(trained, 1),
               "pool_scenes": n, "lr": o.lr, "ema": o.ema, "before": before, "after": after,
               "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
               "total_seconds": round(time.time() - start, 1)}
    with open(os.path.join(o.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    say("summary", json.dumps(summary))


def save(folder, modules, params, averages, provenance, step, o, tag):
    """The averaged weights as a flux-tiny folder (fp16), written beside and then moved over the last."""
    index = {id(p): avg for p, avg in zip(params, averages)}
    meta = dict(provenance)
    meta.update({"continued_by": "tools/gpu-pretrain/pretrain.py", "gpu_steps": step, "gpu_batch": o.batch,
                 "gpu_lr": o.lr, "gpu_seed": o.seed, "snapshot": tag})
    for name, module in modules.items():
        tensors = {}
        for key, p in module.named_parameters():
            tensors[key] = index[id(p)].detach().half()
        for key, buf in module.named_buffers():
            tensors[key] = buf.detach().half()
        path = os.path.join(folder, ft.WEIGHT_FILES[name])
        ft.save_safetensors(path + ".tmp", tensors, meta)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
