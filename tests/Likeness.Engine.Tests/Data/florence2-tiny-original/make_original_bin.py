"""The tiny Florence-2 of ../florence2-tiny in Microsoft's original checkpoint layout, saved by torch.save as
pytorch_model.bin (the zip format: archive/data.pkl + archive/data/N), to test the engine's pickle reader and its
renames, with its config.json in the original layout (dim_embed, image_pos_embed, visual_temporal_embedding).
Also dtypes.bin: tensors in the other storage types and views a state dict can hold.

Run with a Python that has PyTorch (no safetensors package needed; the file is parsed here):
    /usr/bin/python3 make_original_bin.py
"""
import collections, json, os, re, struct

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
source = os.path.join(here, "..", "florence2-tiny", "model.safetensors")

with open(source, "rb") as f:
    raw = f.read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
native = {}
for key, entry in header.items():
    if key == "__metadata__":
        continue
    assert entry["dtype"] == "F32"
    begin, end = entry["data_offsets"]
    array = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype="<f4").reshape(entry["shape"])
    native[key] = torch.from_numpy(array.copy())

# Native key -> original key: the inverse of transformers' convert_florence2_original_pytorch_to_hf.py.
renames = [
    (r"^model\.vision_tower\.convs\.(\d+)\.conv\.", r"vision_tower.convs.\1.proj."),
    (r"^model\.vision_tower\.convs\.(\d+)\.norm\.", r"vision_tower.convs.\1.norm."),
    (r"^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.(spatial_block|channel_block)\.(conv1|conv2)\.", r"vision_tower.blocks.\1.\2.\3.\4.fn.dw."),
    (r"^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.spatial_block\.norm1\.", r"vision_tower.blocks.\1.\2.spatial_block.window_attn.norm."),
    (r"^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.spatial_block\.window_attn\.", r"vision_tower.blocks.\1.\2.spatial_block.window_attn.fn."),
    (r"^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.channel_block\.norm1\.", r"vision_tower.blocks.\1.\2.channel_block.channel_attn.norm."),
    (r"^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.channel_block\.channel_attn\.", r"vision_tower.blocks.\1.\2.channel_block.channel_attn.fn."),
    (r"^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.(spatial_block|channel_block)\.norm2\.", r"vision_tower.blocks.\1.\2.\3.ffn.norm."),
    (r"^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.(spatial_block|channel_block)\.ffn\.", r"vision_tower.blocks.\1.\2.\3.ffn.fn.net."),
    (r"^model\.multi_modal_projector\.image_projection\.weight$", r"image_projection"),
    (r"^model\.multi_modal_projector\.image_proj_norm\.", r"image_proj_norm."),
    (r"^model\.multi_modal_projector\.image_position_embed\.", r"image_pos_embed."),
    (r"^model\.multi_modal_projector\.visual_temporal_embed\.", r"visual_temporal_embed."),
    (r"^model\.language_model\.", r"language_model.model."),
    (r"^lm_head\.weight$", r"language_model.lm_head.weight"),
]
original = collections.OrderedDict()
for key in sorted(native):
    new = key
    for pattern, replacement in renames:
        new, count = re.subn(pattern, replacement, new)
        if count:
            break
    assert new != key, key
    value = native[key]
    original[new] = value.t().contiguous() if new == "image_projection" else value

# The original model ties its embeddings: one storage shared by four keys, as torch.save writes them.
shared = original["language_model.model.shared.weight"]
for key in ["language_model.model.encoder.embed_tokens.weight", "language_model.model.decoder.embed_tokens.weight", "language_model.lm_head.weight"]:
    assert torch.equal(original[key], shared)
    original[key] = shared
# Buffers and parts the captioner does not use, present in Microsoft's files.
original["language_model.final_logits_bias"] = torch.zeros(1, shared.shape[0])
original["vision_tower.norms.weight"] = torch.ones(32)
original["vision_tower.norms.bias"] = torch.zeros(32)
torch.save(original, os.path.join(here, "pytorch_model.bin"))

# Storage types and views: a view into the middle of a shared storage, a transposed (non-contiguous) view,
# half, bfloat16, double, int64, bool, a scalar.
base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8
extra = collections.OrderedDict()
extra["f32"] = base
extra["f32_rows_1_to_3"] = base[1:3]
extra["f32_transposed"] = base.t()
extra["f16"] = (base - 1).half()
extra["bf16"] = (base * 3).bfloat16()
extra["f64"] = base.double() / 3
extra["i64"] = torch.tensor([[-3, 5], [7, 1 << 40]], dtype=torch.int64)
extra["bool"] = torch.tensor([True, False, True])
extra["scalar"] = torch.tensor(2.5)
torch.save(extra, os.path.join(here, "dtypes.bin"))
# config.json as microsoft/Florence-2-* write it (vision "davit" with nested embedding settings), same sizes.
with open(os.path.join(here, "..", "florence2-tiny", "config.json")) as f:
    native_config = json.load(f)
v = native_config["vision_config"]
vision = {"model_type": "davit", "drop_path_rate": 0.0, "patch_size": v["patch_size"], "patch_stride": v["patch_stride"],
          "patch_padding": v["patch_padding"], "patch_prenorm": v["patch_prenorm"], "enable_checkpoint": False,
          "dim_embed": v["embed_dim"], "num_heads": v["num_heads"], "num_groups": v["num_groups"], "depths": v["depths"],
          "window_size": v["window_size"], "projection_dim": v["projection_dim"],
          "visual_temporal_embedding": {"type": "COSINE", "max_temporal_embeddings": v["max_temporal_embeddings"]},
          "image_pos_embed": {"type": "learned_abs_2d", "max_pos_embeddings": v["max_position_embeddings"]},
          "image_feature_source": ["spatial_avg_pool", "temporal_avg_pool"]}
text = {k: native_config["text_config"][k] for k in native_config["text_config"] if k not in ("model_type",)}
text["model_type"] = "florence2_language"
config = {"architectures": ["Florence2ForConditionalGeneration"], "model_type": "florence2", "bos_token_id": 0,
          "eos_token_id": 2, "pad_token_id": 1, "projection_dim": v["projection_dim"], "is_encoder_decoder": True,
          "vocab_size": text["vocab_size"], "torch_dtype": "float32", "text_config": text, "vision_config": vision}
with open(os.path.join(here, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print("torch", torch.__version__, "keys", len(original))
