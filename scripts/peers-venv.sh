#!/usr/bin/env bash
# Creates .venv-peers/upstream: the published upstream clients (rl-rock's SDK, SWE-ReX's RemoteRuntime) in a venv
# of their own, never the main one (upstream's SDK is also imported as `rock`). The compatibility tests run them
# as subprocesses against our admin and rocklet. Idempotent: a stamp naming the pinned specs skips the work.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
PEER=${PEER:-.venv-peers/upstream}
# swe-rex 1.4.0 imports aiohttp in its RemoteRuntime without declaring it.
SPECS=("rl-rock==1.11.0" "swe-rex==1.4.0" "aiohttp")
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$PWD/.cache/pip}

stamp="$PEER/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${SPECS[*]}" ]; then
    exit 0
fi
[ -x "$PEER/bin/python" ] || "$PYTHON" -m venv "$PEER"
echo "peers-venv: installing ${SPECS[*]} into $PEER"
"$PEER/bin/python" -m pip install --disable-pip-version-check -q "${SPECS[@]}"
# Both clients must import: the SDK, its runtime client, GEM envs, and SWE-ReX's runtime.
"$PEER/bin/python" -c "import rock.sdk.sandbox.client, rock.sandbox.remote_sandbox, rock.sdk.envs, swerex.runtime.remote"
echo "${SPECS[*]}" >"$stamp"
