"""Writing a model folder that every Hugging Face loader reads: the weights, the tokenizer, and for the embedded
FastVLM the processor (``AutoProcessor``), which transformers has no class to derive for a ResNet tower."""

from __future__ import annotations

from pathlib import Path

#: A model config attribute: True when the model was built or trained with the env's demonstration in its prompts
#: (the learner and the embedded builds set it), so an agent loading the folder sends it by default.
DEMONSTRATION_ATTRIBUTE = "lmmr1_demonstration"


def save_model_folder(folder: str | Path, model, tokenizer, state_dict: dict | None = None) -> Path:
    """``model.save_pretrained`` + ``tokenizer.save_pretrained`` into ``folder`` (``tokenizer``: the tokenizer, or
    the model's processor, which saves its tokenizer, image processor and chat template), plus the processor of a
    FastVLM built by :func:`~lmmr1_agent.models.fastvlm.build_resnet_vlm`
    (:func:`~lmmr1_agent.models.fastvlm.processor`). ``state_dict``: the weights to write, where the model's own
    are partitioned (ZeRO-3)."""
    model.save_pretrained(folder, state_dict=state_dict)
    tokenizer.save_pretrained(folder)
    if getattr(model.config, "model_type", None) == "fast_vlm" and hasattr(model.config, "lmmr1_image_size"):
        from lmmr1_agent.models.fastvlm import processor

        processor(tokenizer, model.config).save_pretrained(folder)
    return Path(folder)
