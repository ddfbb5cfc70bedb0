"""Alignment of the embedded VLM: the tower and projector learn to read, LoRA factors teach the language model,
the language model's own weights are untouched until the merge, a killed run resumes, the shipped VLM rebuilds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmmr1_agent.align import run
from lmmr1_agent.align.data import (
    FAMILY_NAMES,
    VISUAL_TARGETS,
    describe,
    draw_rows,
    draw_text_rows,
    figure_labels,
    target_text,
)
from lmmr1_agent.align.phases import (
    LabelHeads,
    SharedOpening,
    add_lora,
    center_image_tokens,
    figure_pixels,
    image_spread,
    image_tokens,
    label_loss,
    language_batch,
    language_loss,
    lora_deltas,
    merge_lora,
    train_only,
    vision_parameters,
)
from lmmr1_agent.align.report import recipe_series
from lmmr1_agent.align.run import AlignConfig, _same_family_swap, align, build_parser, build_vlm, save_weights
from lmmr1_env.visualmath.generators import FAMILIES

#: A tower of three tiny stages at 32 px (4 image tokens per figure).
TINY = {"tower_widths": "8,16,32", "tower_depths": "1,1,1", "image_size": 32, "families": "clock,counting,circles"}


@pytest.fixture()
def tiny_vlm(tiny_llama):
    from lmmr1_agent.agents.hf import FastVlmAdapter

    model, tokenizer = build_vlm(AlignConfig(text_model=str(tiny_llama), **TINY))
    return model, FastVlmAdapter("tiny", tokenizer, model.config)


def language_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()
            if n.startswith("model.language_model.") and "lora_" not in n}


def test_every_family_has_labels_and_a_description():
    rng = np.random.default_rng(0)
    for name, family in FAMILIES.items():
        for difficulty in (1, 3, 5):
            spec = family.draw(rng, difficulty)
            labels = figure_labels(name, spec["params"])
            assert labels and all(isinstance(v, int) for v in labels), name
            assert describe(name, spec["params"]).strip(), name


def test_targets_are_in_the_env_answer_format_and_think_a_description_or_the_worked_solution():
    from lmmr1_env.rewards import score_math

    rows = draw_rows("train", 3, 40, FAMILY_NAMES, [1], 56)
    for row in rows:
        for visual in VISUAL_TARGETS:
            assert score_math(target_text(row, visual), row["answer"], mode="answer").reward == 1.5
        assert target_text(row, "solution").startswith(f"<think>{row['solution']}</think>")
    angles = next(r for r in rows if r["family"] == "angles")
    a, b, x = angles["params"]["angles"]
    assert f"180 - {a} - {b} = {x}" in target_text(angles, "solution")
    assert "180" not in target_text(angles, "description")
    with pytest.raises(ValueError, match="visual targets must be one of"):
        target_text(angles, "working")
    with pytest.raises(ValueError, match="--visual-targets must be one of"):
        AlignConfig(visual_targets="working").validate()


def test_label_steps_lower_the_loss_through_tower_and_projector_only(tiny_vlm):
    model, _ = tiny_vlm
    torch.manual_seed(0)
    before = language_state(model)
    params = train_only(model, vision_parameters(model))
    rows = draw_rows("train", 0, 8, TINY["families"].split(","), [1], TINY["image_size"])
    heads = LabelHeads(model.config.text_config.hidden_size)
    optimizer = torch.optim.AdamW(params + list(heads.parameters()), lr=3e-3)
    model.train()
    losses = []
    for _ in range(12):
        loss, _ = label_loss(model, heads, rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(torch.equal(v, language_state(model)[k]) for k, v in before.items())


def test_centering_makes_image_tokens_zero_mean_at_the_embedding_scale(tiny_vlm):
    model, _ = tiny_vlm
    model.eval()
    rows = draw_rows("train", 11, 16, TINY["families"].split(","), [1], TINY["image_size"])
    spread = image_spread(model, rows)
    center_image_tokens(model, rows)
    with torch.no_grad():
        tokens = image_tokens(model, figure_pixels(model, rows))
    target = model.get_input_embeddings().weight.pow(2).mean().sqrt()
    assert torch.allclose(tokens.mean(dim=(0, 1)), torch.zeros(tokens.shape[-1]), atol=1e-5)
    assert torch.allclose(tokens.pow(2).mean().sqrt(), target, rtol=1e-4)
    assert image_spread(model, rows) > spread  # what differs between figures is now most of each token


def test_the_image_gain_swaps_each_figure_for_another_of_its_family():
    rows = [{"family": f, "id": i} for i, f in enumerate(["clock", "counting", "clock", "clock", "angles"])]
    assert [r["id"] for r in _same_family_swap(rows)] == [2, 1, 3, 0, 4]


def test_shared_opening_gives_the_same_loss_and_gradients_as_running_it_in_every_row(tiny_vlm):
    model, adapter = tiny_vlm
    model.eval()
    lora = add_lora(model, rank=4, alpha=8.0)
    with torch.no_grad():  # non-zero factors, so the opening's keys and values depend on them
        for param in lora:
            param.add_(torch.randn_like(param) * 0.05)
    trainable = train_only(model, vision_parameters(model) + lora)
    # figures and text rehearsal problems (no image) in one batch
    rows = draw_rows("train", 5, 3, FAMILY_NAMES, [1], TINY["image_size"]) + draw_text_rows("train", 0, 2, [2])
    batch = language_batch(adapter, rows)
    assert len(batch["pixel_values"]) == 3
    results = []
    for opening in (None, SharedOpening(adapter)):
        model.zero_grad()
        loss, _ = language_loss(model, batch, opening)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in trainable]))
    (full, full_grads), (shared, shared_grads) = results
    assert torch.allclose(full, shared, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(full_grads, shared_grads))
    assert any(g.abs().sum() > 0 for g in shared_grads[-len(lora):])


def test_lora_merge_gives_the_trained_model_and_leaves_base_weights_until_then(tiny_vlm):
    model, adapter = tiny_vlm
    model.eval()
    before = language_state(model)
    lora = add_lora(model, rank=4, alpha=8.0)
    optimizer = torch.optim.AdamW(train_only(model, lora), lr=1e-2)
    batch = language_batch(adapter, draw_rows("train", 7, 2, FAMILY_NAMES, [1], TINY["image_size"]))
    losses = []
    for _ in range(6):
        loss, _ = language_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    renamed = {k.replace(".base.", "."): v for k, v in language_state(model).items()}
    assert all(torch.equal(v, renamed[k]) for k, v in before.items())  # only the factors moved
    deltas = lora_deltas(model)
    assert deltas and all(k.endswith((".weight.lora_up", ".weight.lora_down")) for k in deltas)
    with torch.no_grad():
        trained = language_loss(model, batch)[0]
        assert merge_lora(model) == len(deltas) // 2
        assert not any("lora_" in n for n, _ in model.named_parameters())
        assert torch.allclose(language_loss(model, batch)[0], trained, atol=1e-5)


def test_a_short_run_ships_weights_that_rebuild_the_trained_model_and_resumes_when_killed(tiny_llama, tmp_path,
                                                                                          monkeypatch):
    """End to end on a tiny VLM: weights saved, loaded into a fresh build, same loss; a run killed after its
    first checkpoint resumes from it and ends where an uninterrupted run ends."""
    from lmmr1_agent.agents.hf import FastVlmAdapter
    from lmmr1_agent.models.fastvlm import load_aligned_weights

    config = AlignConfig(text_model=str(tiny_llama), labels_steps=4, labels_batch=4, language_steps=4,
                         language_batch=2, eval_every=2, eval_images=8, eval_prompts=2, bn_recal=8, lora_rank=4,
                         **TINY)
    result = align(config, progress=False)
    folder = save_weights(result, config, ["--labels-steps", "4"], tmp_path / "vlm")
    recipe = json.loads((folder / "recipe.json").read_text())
    assert recipe["model"]["tower"]["hidden_sizes"] == [8, 16, 32] and "--labels-steps 4" in recipe["command"]
    assert [p["phase"] for p in recipe["curve"]] == ["labels", "labels", "centering", "language", "language",
                                                     "language", "language"]
    assert all(np.isfinite(p["held_out_image_gain"]) for p in recipe["curve"] if p["phase"] == "language")

    fresh, tokenizer = build_vlm(config)
    load_aligned_weights(fresh, folder / "weights.safetensors")
    merge_lora(result["model"])
    (row,) = draw_rows("test", 0, 1, ["clock"], [1], TINY["image_size"])
    batch = language_batch(FastVlmAdapter("tiny", tokenizer, fresh.config), [row])
    with torch.no_grad():
        expected = language_loss(result["model"].eval(), batch)[0]
        assert torch.allclose(language_loss(fresh.eval(), batch)[0], expected, atol=1e-5)

    # ---- killed at the first phase-2 checkpoint, then resumed ----
    state = tmp_path / "state"
    real_save = run.save_state

    def save_then_die(folder, cfg, progress, *args):
        real_save(folder, cfg, progress, *args)
        if progress["phase"] == "language" and progress["step"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(run, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        align(config, progress=False, state_dir=state)
    monkeypatch.setattr(run, "save_state", real_save)
    resumed = align(config, progress=False, state_dir=state)
    assert [p.get("step") for p in resumed["curve"]] == [p.get("step") for p in result["curve"]]
    merge_lora(resumed["model"])
    with torch.no_grad():
        assert torch.allclose(language_loss(resumed["model"].eval(), batch)[0], expected, atol=1e-4)
    with pytest.raises(ValueError, match="other settings \\(language_lr\\)"):
        run.load_state(state, AlignConfig(**{**vars(config), "language_lr": 1e-2}))


def test_text_rehearsal_teaches_the_worked_solution_and_a_run_continues_an_earlier_alignment(tiny_llama, tmp_path):
    """Text rows think their arithmetic through; a run with --init-weights starts from the earlier weights exactly
    (same loss before any step), skips phase 1 and the centring, trains the factors on figures (thinking their
    worked solutions) and text, and records what it continued."""
    from lmmr1_agent.agents.hf import FastVlmAdapter
    from lmmr1_agent.models.fastvlm import load_aligned_weights

    (text,) = draw_text_rows("train", 0, 1, [2])
    assert text["image"] is None and text["family"] == "arithmetic"
    expr = text["problem"].removeprefix("Calculate: ")
    assert target_text(text) == f"<think>{expr} = {text['answer']}</think><answer>{text['answer']}</answer>"

    first = AlignConfig(text_model=str(tiny_llama), labels_steps=2, labels_batch=4, language_steps=2,
                        language_batch=2, eval_every=2, eval_images=8, eval_prompts=2, bn_recal=8, lora_rank=4,
                        **TINY)
    folder = save_weights(align(first, progress=False), first, [], tmp_path / "first")
    weights = folder / "weights.safetensors"
    loaded, tokenizer = build_vlm(first)
    load_aligned_weights(loaded, weights)
    batch = language_batch(FastVlmAdapter("tiny", tokenizer, loaded.config),
                           draw_rows("test", 0, 2, ["clock"], [1], TINY["image_size"]) + [text])

    def continued(**changes) -> dict:
        return align(AlignConfig(**{**vars(first), "labels_steps": 0, "init_weights": str(weights), **changes}),
                     progress=False)

    start = continued(language_steps=0)
    merge_lora(start["model"])
    with torch.no_grad():
        assert torch.allclose(language_loss(start["model"].eval(), batch)[0],
                              language_loss(loaded.eval(), batch)[0], atol=1e-4)
    config = AlignConfig(**{**vars(first), "labels_steps": 0, "init_weights": str(weights), "text_batch": 2,
                            "visual_targets": "solution"})
    result = align(config, progress=False)
    assert [p["phase"] for p in result["curve"]] == ["language"] * 2
    assert all(0 <= p["held_out_text_response_right"] <= 1 and np.isfinite(p["held_out_text_loss"])
               for p in result["curve"])
    tower = {k: v for k, v in loaded.model.state_dict().items() if k.startswith("vision_tower.")}
    assert all(torch.equal(v, result["model"].model.state_dict()[k]) for k, v in tower.items())
    recipe = json.loads((save_weights(result, config, ["--init-weights", str(weights)], tmp_path / "second",
                                      run.earlier_recipe(config)) / "recipe.json").read_text())
    assert recipe["continues"]["recipe"]["curve"][0]["phase"] == "labels"
    assert len(recipe["continues"]["weights_sha256"]) == 64 and "2 TextMath" in recipe["data"]["text rehearsal"]
    assert "<think>solution</think>" in recipe["data"]["phase 2"]
    series = recipe_series(recipe)  # the curve runs on from the run it continued
    minutes = [m for m, _ in series["2: answers right (TF)"]]
    assert len(minutes) == 4 and minutes == sorted(minutes) and len(series["1: clock"]) == 1
    assert len(series["2: worked text solutions right (TF)"]) == 2
    with pytest.raises(ValueError, match="LoRA factors of shape"):
        continued(lora_rank=2, language_steps=0)


@pytest.mark.parametrize("argv, message", [
    (["--init-weights", "/nonexistent/weights.safetensors"], "--init-weights: no file"),
    (["--text-difficulties", "0"], "--text-difficulties must be numbers 1-5"),
    (["--image-size", "100"], "--image-size must be a positive multiple of 16"),
    (["--families", "clock,dragons"], "unknown ['dragons']"),
    (["--labels-batch", "0"], "--labels-batch must be at least 1"),
    (["--tower-widths", "8,16"], "must each name three stages"),
    (["--tower-depths", "1,x,1"], "--tower-depths must be comma-separated whole numbers"),
])
def test_bad_settings_are_one_line_errors(argv, message):
    from lmmr1_agent.align.run import main

    with pytest.raises(SystemExit) as error:
        main(argv)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert build_parser().format_help().count("(default:") >= 15


def test_shipped_aligned_vlm_rebuilds_to_the_recorded_output(tmp_path):
    """The install's build from the shipped weights reproduces the greedy response and logits recorded beside them."""
    from lmmr1_agent.align.reference import REFERENCE_FILE, reference_output
    from lmmr1_agent.models.embedded import (
        VL_ALIGNED_NAME,
        VL_NAME,
        VLM_DIR,
        VLM_RECIPE,
        VLM_WEIGHTS,
        build_vlm_folder,
        resolve_model,
    )

    assert VLM_WEIGHTS.stat().st_size <= 25 * 1024**2
    recipe = json.loads(VLM_RECIPE.read_text(encoding="utf-8"))
    assert recipe["command"].startswith("python -m lmmr1_agent.align") and "seed" in recipe["config"]
    expected = json.loads((VLM_DIR / REFERENCE_FILE).read_text(encoding="utf-8"))
    got = reference_output(build_vlm_folder(tmp_path / "vlm", VLM_DIR))
    assert got["response_ids"] == expected["response_ids"], (got["response"], expected["response"])
    assert got["top_ids"] == expected["top_ids"]
    assert np.allclose(got["top_logits"], expected["top_logits"], atol=1e-3)
    assert resolve_model("embedded-vl").rsplit("/", 1)[-1].startswith(VL_ALIGNED_NAME)
    assert resolve_model("embedded-vl-random").rsplit("/", 1)[-1] == VL_NAME


def test_probe_trains_a_bare_tower_on_one_family_and_reports_chance(capsys):
    from lmmr1_agent.align.probe import main, probe, qwen_tower

    lines = []
    tower = qwen_tower(depth=1, width=32, window=56, image_size=56, hidden=48)
    curve = probe("counting", tower, steps=3, batch=4, lr=1e-3, held_out=8, every=2, log=lines.append)
    assert [p["step"] for p in curve] == [2, 3] and [p["images"] for p in curve] == [8, 12]
    assert all(0 <= p["accuracy"] <= 1 and 0 < p["chance"] <= 1 and np.isfinite(p["loss"]) for p in curve)
    assert "held-out" in lines[-1] and "chance" in lines[-1]
    with pytest.raises(SystemExit) as exit_:
        main(["--image-size", "100"])
    assert exit_.value.code == 2 and "multiples of 28" in capsys.readouterr().err
