"""Example agents that run inside a sandbox and reach their LLM through the model service (`OPENAI_BASE_URL`):
`bash_agent` (Python, the official `openai` client; `pip install rock-sdk[agents]`) and `bash_agent.sh` (the
same loop with curl). Neither knows about ROCK or the trainer: any OpenAI-speaking agent runs the same way."""
