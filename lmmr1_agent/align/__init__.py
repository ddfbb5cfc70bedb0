"""Alignment: teach the embedded graft's vision tower to see, with its language model frozen.

``python -m lmmr1_agent.align`` trains only the vision tower and its merger (projector) on figures drawn
on the fly by the VisualMath families, in two phases: ``labels`` (no language model: small heads on the
merger output read the figure's numbers from :mod:`~lmmr1_agent.align.data`'s labels) and ``language``
(teacher-forced through the frozen language model on the env's own prompt: the target is a short
description in ``<think>`` and the answer in ``<answer>``). The result ships in
``lmmr1_agent/models/vision/`` and is what ``embedded-vl`` loads. ``python -m lmmr1_agent.align.probe`` checks
first, in minutes and without the language model, whether a fresh tower learns to read a family at all.
"""
