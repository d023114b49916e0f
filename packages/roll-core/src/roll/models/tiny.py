"""A tiny random-init Qwen2 with a byte-level tokenizer, built in code (no hub): for tests and CPU demos.

The tokenizer maps every UTF-8 byte to one token (256) plus three specials (`<|endoftext|>` = pad,
`<|im_start|>`, `<|im_end|>` = eos) and carries a ChatML chat template, so any text round-trips exactly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TINY_DEFAULTS = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=8192,
)


def build_byte_tokenizer():
    """PreTrainedTokenizerFast: 256 byte tokens (GPT-2 byte alphabet) + specials, ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(path: str | Path, seed: int = 0, **overrides) -> str:
    """Write the tiny model + tokenizer to `path` (a normal HF folder, usable as `pretrain`); returns it."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    if _complete(path) and not overrides:
        return str(path)
    tokenizer = build_byte_tokenizer()
    params = {**TINY_DEFAULTS, **overrides}
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=10000.0,
        **params,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    # written aside and renamed: ranks that build it at once never load a half-written folder
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    # not save_pretrained: under torch.distributed it writes only on rank 0, and any rank may build this
    tmp.mkdir(parents=True)
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    weights = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to the embeddings
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(tmp)
    if overrides:
        shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, path)
    except OSError:
        if not _complete(path):  # left incomplete by an older build: ours replaces it
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rename(tmp, path)
        # else another process finished first (same seed: the same weights)
        shutil.rmtree(tmp, ignore_errors=True)
    return str(path)


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json"))
