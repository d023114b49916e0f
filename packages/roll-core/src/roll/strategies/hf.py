"""`hf_infer`, `hf_train` and the critic on transformers models driven by plain torch (CPU default, CUDA when
placed): the names in one place. The code is in hf_base (shared), hf_sampling (generation), hf_training (the
train loop every train strategy shares) and hf_critic (the value model)."""

from roll.strategies.hf_base import (
    ATTN,
    DTYPES,
    _HfBase,
    _rng_state,
    _set_rng_state,
    forward_log_probs,
    load_model_and_tokenizer,
    read_checkpoint_weights,
)
from roll.strategies.hf_critic import HfCriticStrategy, ValueModel
from roll.strategies.hf_sampling import HfInferStrategy, sample
from roll.strategies.hf_training import HfTrainStrategy

__all__ = [
    "ATTN",
    "DTYPES",
    "HfCriticStrategy",
    "HfInferStrategy",
    "HfTrainStrategy",
    "ValueModel",
    "_HfBase",
    "_rng_state",
    "_set_rng_state",
    "forward_log_probs",
    "load_model_and_tokenizer",
    "read_checkpoint_weights",
    "sample",
]
