"""Where a model runs and in which precision: ``--device auto|cpu|cuda[:N]`` and ``--dtype auto|float32|bfloat16``,
resolved once, with one-line errors for what this machine cannot do."""

from __future__ import annotations

import re

import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
#: float16 is left out: without loss scaling its gradients underflow.
DTYPES = ("auto", "float32", "bfloat16")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_spec(spec: str) -> None:
    """ValueError unless ``spec`` reads as a device (availability is :func:`resolve_device`'s)."""
    if not isinstance(spec, str) or not _DEVICE.fullmatch(spec):
        raise ValueError(f"device must be {DEVICE_CHOICES}, got {spec!r}")


def resolve_device(spec: str) -> str:
    """The torch device ``spec`` means here: ``auto`` is ``cuda`` where torch sees a CUDA device, else ``cpu``. A
    ValueError naming the problem for a CUDA device this machine does not have."""
    check_device_spec(spec)
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return spec
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r}: torch {torch.__version__} sees no CUDA device on this machine; use "
                         "--device cpu (or auto)")
    index = int(spec.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return spec


def resolve_dtype(spec: str, device: str) -> str:
    """The weights' dtype ``spec`` means on ``device``: ``auto`` is bfloat16 on a GPU that supports it, else
    float32 (CPUs: full precision, the default that learns)."""
    if spec not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {spec!r}")
    if spec != "auto":
        return spec
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"
