"""flux-tiny's networks in PyTorch, written to compute exactly what the engine's TorchSharp networks compute
(src/Likeness.Engine: Flux/, Autoencoder/, Text/), with the same parameter names, so that weights move between the
two unchanged. Only what pretraining needs: the transformer, the autoencoder's encoder, the tiny CLIP and T5 and
their byte tokenizers, and a safetensors reader/writer (no package beyond torch and numpy)."""

import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

# flux-tiny's dimensions: FluxParams.Tiny, AutoEncoderParams.Tiny, ClipTextParams.Tiny, T5Params.Tiny, FluxPreset.Tiny.
HIDDEN, HEADS, DEPTH, SINGLE_DEPTH, MLP = 128, 4, 2, 4, 512
AXES, THETA = (8, 12, 12), 10_000.0
IN_CHANNELS, VEC_DIM, CONTEXT_DIM = 64, 128, 128
T5_TOKENS, CLIP_TOKENS = 96, 77
T5_VOCAB, CLIP_VOCAB = 259, 261
RESOLUTION = 128


def attention_core(q, k, v, causal=False, scale=None):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    scores = q @ k.transpose(-1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if causal:
        n = q.shape[-2]
        mask = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    return scores.softmax(-1) @ v


# ---------------------------------------------------------------- transformer (the reference Flux module)

def timestep_embedding(t, dim=256, max_period=10_000.0, time_factor=1000.0):
    half = dim // 2
    freqs = torch.exp(torch.arange(0, half, dtype=torch.float32, device=t.device) * -math.log(max_period) / half)
    args = (t.float() * time_factor)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


def rope_angles(ids):
    """ids [B, L, 3] → (cos, sin) [B, 1, L, 16] in fp32, angles computed in fp64 as the reference's."""
    parts = []
    for i, d in enumerate(AXES):
        scale = torch.arange(0, d, 2, dtype=torch.float64, device=ids.device) / d
        omega = 1.0 / (THETA ** scale)
        parts.append(ids[..., i].double()[..., None] * omega)
    angles = torch.cat(parts, -1)[:, None]
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x, pe):
    cos, sin = pe
    shape = x.shape
    pairs = x.float().reshape(*shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1)
    return rotated.reshape(shape).type_as(x)


def flux_attention(q, k, v, pe):
    x = attention_core(apply_rope(q, pe), apply_rope(k, pe), v)
    b, h, l, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, l, h * d)


class MlpEmbedder(nn.Module):
    def __init__(self, d_in, hidden):
        super().__init__()
        self.in_layer = nn.Linear(d_in, hidden)
        self.out_layer = nn.Linear(hidden, hidden)

    def forward(self, x):
        return self.out_layer(F.silu(self.in_layer(x)))


class RmsNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).type_as(x) * self.scale


class QkNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.query_norm = RmsNorm(dim)
        self.key_norm = RmsNorm(dim)

    def forward(self, q, k, v):
        return self.query_norm(q).type_as(v), self.key_norm(k).type_as(v)


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(HIDDEN, 3 * HIDDEN, bias=True)
        self.norm = QkNorm(HIDDEN // HEADS)
        self.proj = nn.Linear(HIDDEN, HIDDEN)


class Modulation(nn.Module):
    def __init__(self, double):
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(HIDDEN, self.multiplier * HIDDEN)

    def forward(self, vec):
        return self.lin(F.silu(vec))[:, None, :].chunk(self.multiplier, -1)


def layer_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


def modulate(x, shift, scale):
    return (1 + scale) * layer_norm(x) + shift


def split_heads(qkv):
    b, l, _ = qkv.shape
    s = qkv.view(b, l, 3, HEADS, -1).permute(2, 0, 3, 1, 4)
    return s[0], s[1], s[2]


class DoubleStreamBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.img_mod = Modulation(True)
        self.img_attn = SelfAttention()
        self.img_mlp = nn.Sequential(nn.Linear(HIDDEN, MLP), nn.GELU(approximate="tanh"), nn.Linear(MLP, HIDDEN))
        self.txt_mod = Modulation(True)
        self.txt_attn = SelfAttention()
        self.txt_mlp = nn.Sequential(nn.Linear(HIDDEN, MLP), nn.GELU(approximate="tanh"), nn.Linear(MLP, HIDDEN))

    def forward(self, img, txt, vec, pe):
        i_sh1, i_sc1, i_g1, i_sh2, i_sc2, i_g2 = self.img_mod(vec)
        t_sh1, t_sc1, t_g1, t_sh2, t_sc2, t_g2 = self.txt_mod(vec)
        iq, ik, iv = split_heads(self.img_attn.qkv(modulate(img, i_sh1, i_sc1)))
        iq, ik = self.img_attn.norm(iq, ik, iv)
        tq, tk, tv = split_heads(self.txt_attn.qkv(modulate(txt, t_sh1, t_sc1)))
        tq, tk = self.txt_attn.norm(tq, tk, tv)
        attn = flux_attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2), pe)
        n = txt.shape[1]
        img = img + i_g1 * self.img_attn.proj(attn[:, n:])
        img = img + i_g2 * self.img_mlp(modulate(img, i_sh2, i_sc2))
        txt = txt + t_g1 * self.txt_attn.proj(attn[:, :n])
        txt = txt + t_g2 * self.txt_mlp(modulate(txt, t_sh2, t_sc2))
        return img, txt


class SingleStreamBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(HIDDEN, 3 * HIDDEN + MLP)
        self.linear2 = nn.Linear(HIDDEN + MLP, HIDDEN)
        self.norm = QkNorm(HIDDEN // HEADS)
        self.modulation = Modulation(False)

    def forward(self, x, vec, pe):
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = self.linear1(modulate(x, shift, scale)).split([3 * HIDDEN, MLP], -1)
        q, k, v = split_heads(qkv)
        q, k = self.norm(q, k, v)
        attn = flux_attention(q, k, v, pe)
        return x + gate * self.linear2(torch.cat([attn, F.gelu(mlp, approximate="tanh")], 2))


class LastLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(HIDDEN, IN_CHANNELS)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(HIDDEN, 2 * HIDDEN))

    def forward(self, x, vec):
        shift, scale = self.adaLN_modulation(vec).chunk(2, 1)
        return self.linear((1 + scale[:, None]) * layer_norm(x) + shift[:, None])


class Flux(nn.Module):
    def __init__(self):
        super().__init__()
        self.img_in = nn.Linear(IN_CHANNELS, HIDDEN)
        self.time_in = MlpEmbedder(256, HIDDEN)
        self.vector_in = MlpEmbedder(VEC_DIM, HIDDEN)
        self.guidance_in = MlpEmbedder(256, HIDDEN)
        self.txt_in = nn.Linear(CONTEXT_DIM, HIDDEN)
        self.double_blocks = nn.ModuleList([DoubleStreamBlock() for _ in range(DEPTH)])
        self.single_blocks = nn.ModuleList([SingleStreamBlock() for _ in range(SINGLE_DEPTH)])
        self.final_layer = LastLayer()

    def forward(self, img, txt, timesteps, y, guidance, pe):
        x = self.img_in(img)
        vec = self.time_in(timestep_embedding(timesteps).type_as(x))
        vec = vec + self.guidance_in(timestep_embedding(guidance).type_as(x))
        vec = vec + self.vector_in(y)
        t = self.txt_in(txt)
        for block in self.double_blocks:
            x, t = block(x, t, vec, pe)
        n = t.shape[1]
        joint = torch.cat([t, x], 1)
        for block in self.single_blocks:
            joint = block(joint, vec, pe)
        return self.final_layer(joint[:, n:], vec)


def image_ids(h, w, device=None):
    """(0, row, col) for each 2×2 patch of an h × w latent, row-major: [1, (h/2)(w/2), 3]."""
    rows = torch.arange(h // 2, dtype=torch.float32, device=device)[:, None].expand(h // 2, w // 2)
    cols = torch.arange(w // 2, dtype=torch.float32, device=device)[None, :].expand(h // 2, w // 2)
    return torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(1, -1, 3)


def positions(h, w, device=None):
    """The RoPE rotations of T5_TOKENS text tokens (ids zero) then the image's patches, for a batch of one."""
    ids = torch.cat([torch.zeros(1, T5_TOKENS, 3, device=device), image_ids(h, w, device)], 1)
    return rope_angles(ids)


def pack(latents):
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


# ---------------------------------------------------------------- autoencoder's encoder (the reference's)

class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(32, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(32, c, eps=1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        h = self.norm(x)
        b, c, hh, ww = x.shape

        def tokens(t):
            return t.reshape(b, 1, c, hh * ww).transpose(2, 3)

        a = attention_core(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)))
        return x + self.proj_out(a.transpose(2, 3).reshape(b, c, hh, ww))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Encoder(nn.Module):
    def __init__(self, ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=16):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(ch_mult):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(cin, ch * m))
                cin = ch * m
            if i != len(ch_mult) - 1:
                level.downsample = Downsample(cin)
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(cin, cin)
        self.mid.attn_1 = AttnBlock(cin)
        self.mid.block_2 = ResnetBlock(cin, cin)
        self.norm_out = nn.GroupNorm(32, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, 2 * z_channels, 3, padding=1)
        self.z_channels = z_channels

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            for b in level.block:
                h = b(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoEncoderEncoder(nn.Module):
    """Holds the encoder under the key prefix encoder.* and encodes as AutoEncoder.Encode: the scaled, shifted mean."""

    def __init__(self, scale_factor=1.0, shift_factor=0.0):
        super().__init__()
        self.encoder = Encoder()
        self.scale_factor, self.shift_factor = scale_factor, shift_factor

    def forward(self, image):
        mean = self.encoder(image)[:, : self.encoder.z_channels]
        return (mean - self.shift_factor) * self.scale_factor


# ---------------------------------------------------------------- the tiny text encoders (Hugging Face layouts)

class ClipAttention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, heads=4):
        b, l, h = x.shape

        def split(t):
            return t.view(b, l, heads, h // heads).transpose(1, 2)

        a = attention_core(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)), causal=True)
        return self.out_proj(a.transpose(1, 2).reshape(b, l, h))


class ClipMlp(nn.Module):
    def __init__(self, d, mlp):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))


class ClipLayer(nn.Module):
    def __init__(self, d, mlp):
        super().__init__()
        self.self_attn = ClipAttention(d)
        self.layer_norm1 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = ClipMlp(d, mlp)
        self.layer_norm2 = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipTextModel(nn.Module):
    """Keys text_model.*; ids [B, 77] → the pooled state at the first end token (the ids' argmax)."""

    def __init__(self, d=128, layers=2, mlp=512):
        super().__init__()
        self.text_model = nn.Module()
        self.text_model.embeddings = nn.Module()
        self.text_model.embeddings.token_embedding = nn.Embedding(CLIP_VOCAB, d)
        self.text_model.embeddings.position_embedding = nn.Embedding(CLIP_TOKENS, d)
        self.text_model.encoder = nn.Module()
        self.text_model.encoder.layers = nn.ModuleList([ClipLayer(d, mlp) for _ in range(layers)])
        self.text_model.final_layer_norm = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids):
        m = self.text_model
        pos = torch.arange(ids.shape[1], device=ids.device)[None]
        h = m.embeddings.token_embedding(ids) + m.embeddings.position_embedding(pos)
        for layer in m.encoder.layers:
            h = layer(h)
        h = m.final_layer_norm(h)
        return h[torch.arange(ids.shape[0], device=ids.device), ids.argmax(-1)]


class T5Norm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + 1e-6)).type_as(self.weight)


def relative_bucket(relative, buckets=32, max_distance=128):
    half = buckets // 2
    max_exact = half // 2
    out = (relative > 0).long() * half
    n = relative.abs()
    large = (torch.log(n.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)).long() + max_exact
    large = torch.clamp(large, max=half - 1)
    return out + torch.where(n < max_exact, n, large)


class T5Attention(nn.Module):
    def __init__(self, d, heads, dkv, bias):
        super().__init__()
        self.heads, self.dkv = heads, dkv
        self.q, self.k, self.v = (nn.Linear(d, heads * dkv, bias=False) for _ in range(3))
        self.o = nn.Linear(heads * dkv, d, bias=False)
        if bias:
            self.relative_attention_bias = nn.Embedding(32, heads)

    def position_bias(self, length, device):
        pos = torch.arange(length, device=device)
        return self.relative_attention_bias(relative_bucket(pos[None, :] - pos[:, None])).permute(2, 0, 1)[None]

    def forward(self, x, bias):
        b, l, _ = x.shape

        def split(t):
            return t.view(b, l, self.heads, self.dkv).transpose(1, 2)

        scores = split(self.q(x)) @ split(self.k(x)).transpose(2, 3) + bias
        w = scores.float().softmax(-1).type_as(scores)
        return self.o((w @ split(self.v(x))).transpose(1, 2).reshape(b, l, -1))


class T5Encoder(nn.Module):
    """Keys shared.*, encoder.*; ids [B, T] → [B, T, 128]."""

    def __init__(self, d=128, heads=4, dkv=32, ff=256, layers=2):
        super().__init__()
        self.shared = nn.Embedding(T5_VOCAB, d)
        self.encoder = nn.Module()
        self.encoder.block = nn.ModuleList()
        for i in range(layers):
            block = nn.Module()
            attn = nn.Module()
            attn.SelfAttention = T5Attention(d, heads, dkv, i == 0)
            attn.layer_norm = T5Norm(d)
            ffl = nn.Module()
            ffl.DenseReluDense = nn.Module()
            ffl.DenseReluDense.wi_0 = nn.Linear(d, ff, bias=False)
            ffl.DenseReluDense.wi_1 = nn.Linear(d, ff, bias=False)
            ffl.DenseReluDense.wo = nn.Linear(ff, d, bias=False)
            ffl.layer_norm = T5Norm(d)
            block.layer = nn.ModuleList([attn, ffl])
            self.encoder.block.append(block)
        self.encoder.final_layer_norm = T5Norm(d)

    def forward(self, ids):
        h = self.shared(ids)
        blocks = self.encoder.block
        bias = blocks[0].layer[0].SelfAttention.position_bias(ids.shape[1], ids.device)
        for block in blocks:
            attn, ffl = block.layer
            h = h + attn.SelfAttention(attn.layer_norm(h), bias)
            d = ffl.DenseReluDense
            n = ffl.layer_norm(h)
            h = h + d.wo(F.gelu(d.wi_0(n), approximate="tanh") * d.wi_1(n))
        return self.encoder.final_layer_norm(h)


def t5_ids(text, length=T5_TOKENS):
    """ByteT5Tokenizer: UTF-8 bytes + 3, then end (1), padded with 0."""
    data = text.encode("utf-8")[: length - 1]
    return [b + 3 for b in data] + [1] + [0] * (length - 1 - len(data))


def clip_ids(text, length=CLIP_TOKENS):
    """ByteClipTokenizer: start (259), lower-cased UTF-8 bytes + 3, padded with the end id (260)."""
    data = text.lower().encode("utf-8")[: length - 2]
    return [259] + [b + 3 for b in data] + [260] * (length - 1 - len(data))


# ---------------------------------------------------------------- safetensors

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}
_NAMES = {v: k for k, v in _DTYPES.items()}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8: 8 + n])
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for key, info in header.items():
        start, end = info["data_offsets"]
        raw = bytearray(data[8 + n + start: 8 + n + end])
        out[key] = torch.frombuffer(raw, dtype=_DTYPES[info["dtype"]]).reshape(info["shape"]).clone() if raw else \
            torch.zeros(info["shape"], dtype=_DTYPES[info["dtype"]])
    return out, meta


def save_safetensors(path, tensors, meta=None):
    header, blobs, offset = {}, [], 0
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        raw = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[key] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_into(module, path, extra_ok=False):
    """Loads a safetensors file into a module in fp32; every key must match (the file may hold more when extra_ok)."""
    tensors, meta = load_safetensors(path)
    wanted = set(module.state_dict())
    missing, unexpected = wanted - set(tensors), set(tensors) - wanted
    if missing or (unexpected and not extra_ok):
        raise ValueError(f"{path}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    module.load_state_dict({k: tensors[k].float() for k in wanted})
    return meta


WEIGHT_FILES = {"ae": "ae.safetensors", "transformer": "transformer.safetensors", "clip": "text_encoder.safetensors",
                "t5": "text_encoder_2.safetensors"}


def load_folder(folder):
    """A flux-tiny weights folder: the networks {"ae", "transformer", "clip", "t5"} in fp32 on the CPU (the
    autoencoder's scale and shift from its file's metadata, as the engine reads them) and each file's metadata."""
    nets = {"ae": AutoEncoderEncoder(), "transformer": Flux(), "clip": ClipTextModel(), "t5": T5Encoder()}
    meta = {name: load_into(net, os.path.join(folder, WEIGHT_FILES[name]), extra_ok=name == "ae") for name, net in nets.items()}
    nets["ae"].scale_factor = float(meta["ae"]["scale_factor"])
    nets["ae"].shift_factor = float(meta["ae"]["shift_factor"])
    return nets, meta
