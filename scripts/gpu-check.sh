#!/usr/bin/env bash
# Every GPU check of the repository in one go (a few minutes on one CUDA machine): the tests marked `gpu`.
# Needs a venv whose torch is a CUDA build (`make setup` installs the CPU wheel); point VENV at it, e.g.
#   python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install torch -e "packages/roll-core[test]"
#   VENV=.venv-gpu bash scripts/gpu-check.sh
# Today: roll-core's deepspeed_train ZeRO-2/3/offload with nccl vs hf_train (tests/test_deepspeed_gpu.py);
# megatron_train vs hf_train on one GPU (plain, full recompute) and TP=2 on two (tests/test_megatron_gpu.py);
# the vllm engine against hf_train's log-probs after a sync (tests/test_vllm_gpu.py, needs a CUDA vllm).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA device visible to this torch (' + torch.__version__ + ')')"
exec "$VENV/bin/python" -m pytest -m gpu -q -rs packages/roll-core/tests "$@"
