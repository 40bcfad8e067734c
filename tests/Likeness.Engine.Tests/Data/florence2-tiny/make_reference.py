"""Reference data for the engine's Florence-2: a tiny random Florence2ForConditionalGeneration (transformers'
native implementation), its weights in float32 safetensors, and what the reference computes from them in float64.

Run where PyTorch and transformers (with Florence-2) are installed; no network needed:
    python make_reference.py OUT_DIR
Writes OUT_DIR/config.json, model.safetensors (the model's own keys), reference.safetensors, reference.json.
"""
import json, os, sys, traceback

import torch
import transformers
from safetensors.torch import save_file
from transformers import Florence2Config, Florence2ForConditionalGeneration

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(20261127)

vision = dict(in_channels=3, depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1],
              patch_prenorm=[False, True], embed_dim=[16, 32], num_heads=[2, 4], num_groups=[2, 4], window_size=4,
              drop_path_rate=0.0, mlp_ratio=4.0, qkv_bias=True, activation_function="gelu", projection_dim=24,
              max_temporal_embeddings=8, max_position_embeddings=16)
text = dict(model_type="bart", vocab_size=64, d_model=24, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=128,
            activation_function="gelu", scale_embedding=False, bos_token_id=0, pad_token_id=1, eos_token_id=2,
            decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, encoder_layerdrop=0.0, decoder_layerdrop=0.0, tie_word_embeddings=True)
config = Florence2Config(vision_config=vision, text_config=text, image_token_id=63)
try:
    config._attn_implementation = "eager"
except Exception:
    pass
model = Florence2ForConditionalGeneration(config).eval()

# Larger-than-default random weights, so that every term of the computation shows in the outputs.
with torch.no_grad():
    for name, p in model.named_parameters():
        if p.dim() == 1 and ("norm" in name or "layernorm" in name) and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif p.dim() == 1:
            p.copy_(0.05 * torch.randn_like(p))
        else:
            p.copy_(0.15 * torch.randn_like(p))

state = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}
save_file(state, os.path.join(out, "model.safetensors"))
config.save_pretrained(out)

model = model.double()
ref = {}
info = {"transformers": transformers.__version__, "torch": torch.__version__, "keys": sorted(state.keys()),
        "lm_head_tied": model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr(),
        "generation_config": model.generation_config.to_dict()}

# Image 72 x 56: stage 0 gives 18 x 14 tokens, stage 1 9 x 7, padded to windows of 4 (12 x 8).
pixel_values = torch.randn(2, 3, 72, 56, dtype=torch.float64)
prompt = [0, 5, 9, 17, 33, 2]
with torch.no_grad():
    vision_out = model.model.vision_tower(pixel_values)
    if not isinstance(vision_out, torch.Tensor):
        vision_out = vision_out.last_hidden_state
    features = model.model.multi_modal_projector(vision_out)
    n_img = features.shape[1]
    input_ids = torch.tensor([[63] * n_img + prompt, [63] * n_img + [0, 7, 7, 40, 2, 1]], dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -1] = 0
    decoder_input_ids = torch.tensor([[2, 0, 11, 23, 5], [2, 0, 3, 3, 60]], dtype=torch.long)
    outputs = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask,
                    decoder_input_ids=decoder_input_ids)
ref.update(pixel_values=pixel_values, vision_features=vision_out, image_features=features,
           input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
           encoder_last_hidden_state=outputs.encoder_last_hidden_state, logits=outputs.logits)

def generate(tag, **kw):
    try:
        with torch.no_grad():
            g = model.generate(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask,
                               return_dict_in_generate=True, output_scores=True, **kw)
        ref[f"{tag}_sequences"] = g.sequences
        if getattr(g, "sequences_scores", None) is not None:
            ref[f"{tag}_sequences_scores"] = g.sequences_scores
        info[tag] = kw
    except Exception:
        info[tag + "_error"] = traceback.format_exc()

generate("greedy", do_sample=False, num_beams=1, max_new_tokens=12, min_new_tokens=0, no_repeat_ngram_size=0)
generate("beam3", do_sample=False, num_beams=3, max_new_tokens=12, early_stopping=True, no_repeat_ngram_size=3)
generate("beam3_long", do_sample=False, num_beams=3, max_new_tokens=30, early_stopping=False, no_repeat_ngram_size=3)

# The image processor: resize to the model's size (bicubic), rescale 1/255, ImageNet normalisation.
try:
    from transformers import CLIPImageProcessor
    import numpy as np
    from PIL import Image
    yy, xx = np.mgrid[0:30, 0:40]
    rgb = np.stack([(xx * 6) % 256, (yy * 8) % 256, ((xx + yy) * 5) % 256], -1).astype(np.uint8)
    proc = CLIPImageProcessor(do_resize=True, size={"height": 48, "width": 64}, resample=3, do_center_crop=False,
                              do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                              image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], do_convert_rgb=True)
    pv = proc(images=Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
    ref["processor_input"] = torch.from_numpy(rgb.copy()).to(torch.uint8)
    ref["processor_pixel_values"] = pv.double()
except Exception:
    info["processor_error"] = traceback.format_exc()

save_file({k: (v.contiguous() if v.dtype in (torch.long, torch.uint8) else v.double().contiguous()) for k, v in ref.items()},
          os.path.join(out, "reference.safetensors"))
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(info, f, indent=1)
print(json.dumps({k: v for k, v in info.items() if k != "keys"}, indent=1))
print("\n".join(f"{k} {tuple(v.shape)}" for k, v in ref.items()))
