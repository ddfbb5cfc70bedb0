"""Alignment: only the vision side learns, the language side is untouched, the shipped tower rebuilds exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmmr1_agent.align.data import FAMILY_NAMES, describe, draw_rows, figure_labels, target_text
from lmmr1_agent.align.phases import (
    FrozenPrefix,
    LabelHeads,
    freeze_language,
    label_loss,
    language_batch,
    language_loss,
)
from lmmr1_agent.align.run import AlignConfig, align, build_parser, save_vision
from lmmr1_env.visualmath.generators import FAMILIES
from tests.tiny_models import build_llama

TINY = {"depth": 2, "width": 32, "heads": 2, "image_size": 56, "families": "clock,counting,coordinates"}


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_llama(tmp_path_factory.mktemp("tiny-llama"), max_positions=2048)


@pytest.fixture(scope="module")
def tiny_graft(tiny_llama):
    from lmmr1_agent.agents.hf import QwenVLAdapter

    config = AlignConfig(text_model=str(tiny_llama), **TINY)
    from lmmr1_agent.align.run import build_graft

    model, tokenizer = build_graft(config)
    model.eval()
    adapter = QwenVLAdapter("tiny", tokenizer, model.config, min_pixels=56 * 56, max_pixels=56 * 56)
    return model, adapter


def language_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("model.visual.")}


def test_every_family_has_labels_and_a_description():
    rng = np.random.default_rng(0)
    for name, family in FAMILIES.items():
        for difficulty in (1, 3, 5):
            spec = family.draw(rng, difficulty)
            labels = figure_labels(name, spec["params"])
            assert labels and all(isinstance(v, int) for v in labels), name
            assert describe(name, spec["params"]).strip(), name


def test_target_is_in_the_env_answer_format():
    from lmmr1_env.rewards import score_math

    (row,) = draw_rows("train", 3, 1, FAMILY_NAMES, [1], 56)
    assert score_math(target_text(row), row["answer"], mode="answer").reward == 1.5


def test_alignment_steps_lower_the_loss_and_leave_language_weights_alone(tiny_graft):
    model, adapter = tiny_graft
    torch.manual_seed(0)
    trainable = freeze_language(model)
    before = language_state(model)
    rows = draw_rows("train", 0, 8, TINY["families"].split(","), [1], TINY["image_size"])
    heads = LabelHeads(model.config.text_config.hidden_size)
    optimizer = torch.optim.AdamW(trainable + list(heads.parameters()), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, _ = label_loss(model, heads, adapter.image_processor, rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses

    prefix = FrozenPrefix(model, adapter)
    batch = language_batch(adapter, rows[:4])
    with torch.no_grad():  # the cached opening changes nothing but speed
        full, _ = language_loss(model, batch)
        cached, _ = language_loss(model, batch, prefix)
    assert abs(full.item() - cached.item()) < 1e-4
    optimizer = torch.optim.AdamW(trainable, lr=3e-3)
    losses = []
    for _ in range(8):
        loss, _ = language_loss(model, batch, prefix)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    after = language_state(model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_aligned_graft_keeps_text_logits_and_rebuilds_identically(tiny_llama, tmp_path):
    """A short run end to end; its weights load into a fresh graft that answers text like the original LM."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lmmr1_agent.align.run import build_graft
    from lmmr1_agent.models.embedded import load_vision_weights

    config = AlignConfig(text_model=str(tiny_llama), labels_steps=3, labels_batch=4, language_steps=2,
                         language_batch=2, eval_every=3, eval_images=8, eval_prompts=2, **TINY)
    result = align(config, progress=False)
    folder = save_vision(result, config, ["--labels-steps", "3"], tmp_path / "vision")
    recipe = json.loads((folder / "recipe.json").read_text())
    assert recipe["vision"]["depth"] == 2 and recipe["curve"] and "--labels-steps 3" in recipe["command"]

    fresh, _ = build_graft(config)
    load_vision_weights(fresh, folder / "vision.safetensors")
    trained = result["model"]
    assert any(not torch.equal(a, b) for a, b in zip(trained.model.visual.parameters(),
                                                    build_graft(config)[0].model.visual.parameters()))
    (row,) = draw_rows("test", 0, 1, ["clock"], [1], 56)
    from lmmr1_agent.agents.hf import QwenVLAdapter

    adapter = QwenVLAdapter("tiny", result["tokenizer"], fresh.config, min_pixels=56 * 56, max_pixels=56 * 56)
    batch = language_batch(adapter, [row])
    with torch.no_grad():
        assert torch.equal(language_loss(fresh.eval(), batch)[0], language_loss(trained.eval(), batch)[0])
        tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
        ids = tokenizer("What is 7 + 5?", return_tensors="pt").input_ids
        original = LlamaForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)(ids).logits
        grafted = fresh(input_ids=ids).logits[..., : original.shape[-1]]
    assert (original - grafted).abs().max().item() < 1e-4


@pytest.mark.parametrize("argv, message", [
    (["--image-size", "100"], "--image-size must be a positive multiple of 28"),
    (["--families", "clock,dragons"], "unknown ['dragons']"),
    (["--labels-batch", "0"], "--labels-batch must be at least 1"),
    (["--width", "30", "--heads", "4"], "--width 30 must split"),
])
def test_bad_settings_are_one_line_errors(argv, message):
    from lmmr1_agent.align.run import main

    with pytest.raises(SystemExit) as error:
        main(argv)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert build_parser().format_help().count("(default:") >= 15


def test_shipped_aligned_graft_rebuilds_to_the_recorded_output(tmp_path):
    """The install's build from the shipped weights reproduces the greedy response and logits recorded beside them."""
    from lmmr1_agent.align.reference import REFERENCE_FILE, reference_output
    from lmmr1_agent.models.embedded import (
        VISION_DIR,
        VISION_RECIPE,
        VISION_WEIGHTS,
        VL_ALIGNED_NAME,
        VL_NAME,
        build_graft_folder,
        resolve_model,
    )

    assert VISION_WEIGHTS.stat().st_size <= 25 * 1024**2
    recipe = json.loads(VISION_RECIPE.read_text(encoding="utf-8"))
    assert recipe["command"].startswith("python -m lmmr1_agent.align") and "seed" in recipe["config"]
    expected = json.loads((VISION_DIR / REFERENCE_FILE).read_text(encoding="utf-8"))
    built = build_graft_folder(tmp_path / "graft", vision=recipe["vision"], weights=VISION_WEIGHTS)
    got = reference_output(built)
    assert got["response_ids"] == expected["response_ids"], (got["response"], expected["response"])
    assert got["top_ids"] == expected["top_ids"]
    assert np.allclose(got["top_logits"], expected["top_logits"], atol=1e-3)
    assert resolve_model("embedded-vl").rsplit("/", 1)[-1].startswith(VL_ALIGNED_NAME)
    assert resolve_model("embedded-vl-random").rsplit("/", 1)[-1] == VL_NAME


def test_probe_trains_a_bare_tower_on_one_family_and_reports_chance():
    from lmmr1_agent.align.probe import main, probe

    lines = []
    curve = probe("counting", steps=3, batch=4, lr=1e-3, depth=1, width=32, window=56, image_size=56, held_out=8,
                  every=2, hidden=48, log=lines.append)
    assert [p["step"] for p in curve] == [2, 3] and [p["images"] for p in curve] == [8, 12]
    assert all(0 <= p["accuracy"] <= 1 and 0 < p["chance"] <= 1 and np.isfinite(p["loss"]) for p in curve)
    assert "held-out" in lines[-1] and "chance" in lines[-1]
    with pytest.raises(SystemExit, match="multiples of 28"):
        main(["--image-size", "100"])
