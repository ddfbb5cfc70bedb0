"""The FastVLM build (a Llama inside FastVlmForConditionalGeneration with a ResNet tower) and the resnet probe."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from lmmr1_agent.align.data import draw_rows
from lmmr1_agent.models.fastvlm import IMAGE_TOKEN, build_resnet_vlm, image_pixels, image_seq_length

#: One printed measurement: ``[probe] <family> step N (M figures, S s): held-out X% (chance Y%), loss L``.
CURVE_LINE = re.compile(r"^\[probe\] counting step (\d+) \((\d+) figures, \d+ s\): held-out (\d+\.\d)% "
                        r"\(chance (\d+\.\d)%\), loss (-?\d+(\.\d+)?)$")


def test_image_pixels_are_scaled_to_minus_one_one_and_tokens_follow_the_stride():
    white, black = np.full((112, 112, 3), 255, np.uint8), np.zeros((56, 56, 3), np.uint8)
    pixels = image_pixels([white, black], 112)
    assert pixels.shape == (2, 3, 112, 112) and pixels.dtype == torch.float32
    assert torch.all(pixels[0] == 1.0) and torch.all(pixels[1] == -1.0)  # the small image is resized, not padded
    assert image_seq_length(112) == 49 and image_seq_length(224) == 196
    with pytest.raises(ValueError, match="image size 100 px"):
        image_seq_length(100)


def test_resnet_vlm_keeps_the_llama_text_logits_and_reloads_identically(tiny_llama, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoTokenizer, LlamaForCausalLM

    llama = LlamaForCausalLM.from_pretrained(tiny_llama).eval()
    model, tokenizer = build_resnet_vlm(llama, AutoTokenizer.from_pretrained(tiny_llama), image_size=112)
    model.eval()
    image_token = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert model.config.image_token_id == image_token and model.config.image_seq_length == 49
    text = torch.tensor([tokenizer.encode("What is 7 + 5?")])
    with torch.no_grad():
        expected = llama(input_ids=text).logits
        got = model(input_ids=text).logits[..., :expected.shape[-1]]
    assert torch.allclose(got, expected, atol=1e-5)  # text prompts: the Llama model's logits

    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path, local_files_only=True).eval()
    assert type(reloaded).__name__ == "FastVlmForConditionalGeneration"
    assert AutoTokenizer.from_pretrained(tmp_path).convert_tokens_to_ids(IMAGE_TOKEN) == image_token
    prompt = tokenizer.encode("How many red circles are in the picture?")
    ids = torch.tensor([prompt[:1] + [image_token] * 49 + prompt[1:]])
    pixels = image_pixels([draw_rows("train", 0, 1, ["counting"], [1], 112)[0]["image"]], 112)
    with torch.no_grad():
        before = model(input_ids=ids, pixel_values=pixels).logits
        after = reloaded(input_ids=ids, pixel_values=pixels).logits
    assert before.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(before).all()
    assert torch.equal(before, after)


def test_batchnorm_recalibration_sets_the_plain_average_and_restores_momentum():
    from lmmr1_agent.align.phases import recalibrate_batchnorm
    from lmmr1_agent.align.probe import resnet_tower

    torch.manual_seed(0)
    tower = resnet_tower(image_size=32)
    stem = tower.module.embedder.embedder.normalization
    batches = [(torch.randn(4, 3, 32, 32) * scale,) for scale in (1.0, 3.0)]
    assert recalibrate_batchnorm(tower.module, lambda inputs: tower.features(*inputs), batches) > 0
    assert stem.momentum == 0.1 and stem.num_batches_tracked.item() == 2
    with torch.no_grad():  # the stem norm's running mean is the mean of its two batch means
        means = [tower.module.embedder.embedder.convolution(x).mean(dim=(0, 2, 3)) for (x,) in batches]
    assert torch.allclose(stem.running_mean, (means[0] + means[1]) / 2, atol=1e-5)


def test_probe_cli_trains_the_resnet_tower_and_prints_the_curve():
    argv = ["--tower", "resnet", "--family", "counting", "--image-size", "32", "--steps", "3", "--batch", "4",
            "--every", "2", "--held-out", "8", "--bn-recal", "8", "--threads", "1"]
    done = subprocess.run([sys.executable, "-m", "lmmr1_agent.align.probe", *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("[probe] resnet tower: ") and "4 tokens per 32 px figure" in lines[0]
    points = [CURVE_LINE.match(line) for line in lines[1:]]
    assert all(points), lines
    assert [(int(p[1]), int(p[2])) for p in points] == [(2, 8), (3, 12)]
    assert all(0 <= float(p[3]) <= 100 and 0 < float(p[4]) <= 100 for p in points)


def test_saved_folder_loads_with_auto_processor_like_the_agent_builds_inputs(tiny_llama, tmp_path):
    """A saved embedded-architecture folder is a standard VLM folder: AutoProcessor + AutoModelForImageTextToText
    build exactly the inputs the agent builds, and the model's logits follow."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from lmmr1_agent.agents.hf import HFAgent
    from tests.tiny_models import build_fastvlm

    folder = build_fastvlm(tmp_path / "vlm", tiny_llama)
    processor = AutoProcessor.from_pretrained(folder)
    image = np.random.default_rng(1).integers(0, 255, (40, 60, 3), np.uint8)
    chat = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Count."}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    theirs = processor(text=[text], images=[image], return_tensors="pt")
    agent = HFAgent(str(folder), max_new_tokens=2)
    ours = agent.adapter.prepare([chat])
    assert torch.equal(theirs["input_ids"], ours["input_ids"])
    assert torch.equal(theirs["pixel_values"], ours["pixel_values"])
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.equal(model(**theirs).logits, agent.model(**ours).logits)


def test_alignment_weights_that_do_not_fit_are_a_value_error_naming_the_keys(tiny_llama, tmp_path):
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from lmmr1_agent.models.fastvlm import VISION_PREFIXES, load_aligned_weights, load_vision_weights

    def fresh():
        return build_resnet_vlm(tiny_llama, AutoTokenizer.from_pretrained(tiny_llama), image_size=32)[0]

    model = fresh()
    vision = {k: v.clone() for k, v in model.model.state_dict().items() if k.startswith(VISION_PREFIXES)}
    good = tmp_path / "good.safetensors"
    save_file({**vision, "language_model.layers.0.mlp.up_proj.weight.lora_up": torch.zeros(1, 1)}, str(good))
    assert set(load_vision_weights(fresh(), good)) == {"language_model.layers.0.mlp.up_proj.weight.lora_up"}
    missing = tmp_path / "missing.safetensors"
    dropped = sorted(vision)[0]
    save_file({k: v for k, v in vision.items() if k != dropped}, str(missing))
    with pytest.raises(ValueError, match=f"does not fit this VLM: missing \\['{re.escape(dropped)}'\\]"):
        load_vision_weights(fresh(), missing)
    stray = tmp_path / "stray.safetensors"
    save_file({**vision, "language_model.norm.weight": torch.ones(1)}, str(stray))
    with pytest.raises(ValueError, match="unexpected \\['language_model.norm.weight'\\]"):
        load_aligned_weights(fresh(), stray)
