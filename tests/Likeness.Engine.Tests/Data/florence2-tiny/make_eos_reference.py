"""More generation references for the tiny Florence-2 of this folder, where beams end early: the end token's row of the
tied embedding (shared.weight[2], which is also the output layer's) is multiplied by a scale in float32, so that the
random network emits </s> before the length limit and beam search's finished-hypothesis bookkeeping and early
stopping are exercised. Same pixels, prompts and masks as reference.safetensors; the model runs in float64.

Run where PyTorch and transformers (with Florence-2) are installed:  python make_eos_reference.py OUT_DIR
Writes OUT_DIR/eos_reference.safetensors and OUT_DIR/eos_reference.json. The committed file was made on the device
machine with transformers 5.17.0 and torch 2.11.0+cu130 (on the CPU, float64). Up to scale 2.5 no beam ends early;
from 3.0 greedy ends at once; at 3.6 one row's beams end at once while the other's run to the limit; from 3.7 all
end at once.
"""
import json, os, sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Florence2Config, Florence2ForConditionalGeneration

here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
config = Florence2Config.from_pretrained(here)
try:
    config._attn_implementation = "eager"
except Exception:
    pass
ref = load_file(os.path.join(here, "reference.safetensors"))
inputs = dict(input_ids=ref["input_ids"], pixel_values=ref["pixel_values"], attention_mask=ref["attention_mask"])
settings = {
    "greedy": dict(num_beams=1, max_new_tokens=20, no_repeat_ngram_size=0),
    "beam3": dict(num_beams=3, max_new_tokens=20, early_stopping=True, no_repeat_ngram_size=3),
    "beam3_noearly": dict(num_beams=3, max_new_tokens=20, early_stopping=False, no_repeat_ngram_size=3),
}
results, info = {}, {"transformers": transformers.__version__, "torch": torch.__version__, "settings": settings, "scales": []}
for scale in [1.5, 2.0, 2.5, 3.0, 3.2, 3.4, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0]:
    model = Florence2ForConditionalGeneration(config).eval()
    missing, unexpected = model.load_state_dict(load_file(os.path.join(here, "model.safetensors")), strict=False)
    assert not unexpected, unexpected
    with torch.no_grad():
        model.model.language_model.shared.weight[2] *= scale
    assert model.lm_head.weight.data_ptr() == model.model.language_model.shared.weight.data_ptr()
    model = model.double()
    info["scales"].append(scale)
    for tag, kw in settings.items():
        with torch.no_grad():
            g = model.generate(**inputs, do_sample=False, return_dict_in_generate=True, output_scores=True, **kw)
        key = f"eos{scale:g}_{tag}"
        results[key + "_sequences"] = g.sequences.contiguous()
        if getattr(g, "sequences_scores", None) is not None:
            results[key + "_sequences_scores"] = g.sequences_scores.double().contiguous()
        print(key, g.sequences.tolist(), None if getattr(g, "sequences_scores", None) is None else g.sequences_scores.tolist())
save_file(results, os.path.join(out, "eos_reference.safetensors"))
with open(os.path.join(out, "eos_reference.json"), "w") as f:
    json.dump(info, f, indent=1)
