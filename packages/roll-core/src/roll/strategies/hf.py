"""`hf_infer`, `hf_train` and the critic on transformers models driven by plain torch (CPU default, CUDA when
placed): the strategy classes in one place, for the registry and for callers. The code is in hf_base (shared),
hf_sampling (generation), hf_training (the train loop every train strategy shares) and hf_critic (the value
model)."""

from roll.strategies.hf_critic import HfCriticStrategy
from roll.strategies.hf_sampling import HfInferStrategy
from roll.strategies.hf_training import HfTrainStrategy

__all__ = ["HfCriticStrategy", "HfInferStrategy", "HfTrainStrategy"]
