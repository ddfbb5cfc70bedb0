"""Alignment: teach the embedded VLM to see, LLaVA-style, in two phases.

``python -m lmmr1_agent.align`` builds SmolLM2-135M-Instruct into FastVLM with a fresh ResNet tower and trains
it on figures drawn on the fly by the VisualMath families' training split: ``labels`` (no language model:
small heads on the projector's image tokens read the figure's numbers from :mod:`~lmmr1_agent.align.data`'s
labels; the tower and projector train) and ``language`` (visual instruction tuning on the env's own prompt:
the target is a short description in ``<think>`` and the answer in ``<answer>``; the tower, the projector and
LoRA factors on the language model train). The result ships in ``lmmr1_agent/models/vlm/`` and is what
``embedded-vl`` loads. ``python -m lmmr1_agent.align.probe`` checks first, in minutes and without the
language model, whether a fresh tower learns to read a family at all.
"""
