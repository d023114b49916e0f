#!/usr/bin/env bash
# The bash agent's loop with curl: bash_agent.sh TASK_FILE [MAX_TURNS]. Needs curl and a python3 (or $PYTHON)
# for JSON; the model is at $OPENAI_BASE_URL ($OPENAI_MODEL, default policy). Same protocol as bash_agent.py:
# a ```bash block is run and its result shown, DONE ends, anything else gets a reminder.
set -euo pipefail
task_file=${1:?usage: bash_agent.sh TASK_FILE [MAX_TURNS]}
max_turns=${2:-8}
py=${PYTHON:-python3}
model=${OPENAI_MODEL:-policy}
system='You are an agent in a Linux sandbox. To run a shell command, reply with exactly one fenced block:
```bash
<command>
```
You will see its exit code and output. When the task is done, reply DONE.'
reminder='No command found. Reply with one ```bash block to run a command, or DONE when the task is done.'
# messages live in a JSON file; the python one-liners only build and take apart JSON
messages=$(mktemp); reply=$(mktemp); trap 'rm -f "$messages" "$reply"' EXIT
"$py" -c 'import json,sys; print(json.dumps([{"role":"system","content":sys.argv[1]},{"role":"user","content":open(sys.argv[2]).read()}]))' \
    "$system" "$task_file" >"$messages"
add() { "$py" -c 'import json,sys; m=json.load(open(sys.argv[1])); m.append({"role":sys.argv[2],"content":sys.argv[3]}); json.dump(m,open(sys.argv[1],"w"))' "$messages" "$1" "$2"; }
turns=0; stopped=max_turns
while (( turns < max_turns )); do
    body=$("$py" -c 'import json,sys; print(json.dumps({"model":sys.argv[1],"messages":json.load(open(sys.argv[2]))}))' "$model" "$messages")
    curl -sS --fail-with-body -H "content-type: application/json" -H "authorization: Bearer ${OPENAI_API_KEY:-rock}" \
        -d "$body" "${OPENAI_BASE_URL:?OPENAI_BASE_URL is not set}/chat/completions" >"$reply"
    content=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["message"].get("content") or "")' "$reply")
    turns=$((turns + 1))
    add assistant "$content"
    command=$("$py" -c 'import re,sys; m=re.search(r"```(?:bash|sh)?[ \t]*\n(.*?)```", sys.argv[1], re.S); print(m.group(1).strip() if m else "")' "$content")
    if [[ -n $command ]]; then
        set +e; output=$(timeout 30 bash -c "$command" 2>&1); code=$?; set -e
        add user "exit code $code
${output:0:4000}"
    elif [[ $content == *DONE* ]]; then
        stopped=done; break
    else
        add user "$reminder"
    fi
done
echo "{\"turns\": $turns, \"stopped\": \"$stopped\"}"
