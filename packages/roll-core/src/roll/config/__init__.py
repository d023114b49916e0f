"""Configuration: ROLL-style YAML → `AgenticConfig`, strictly validated before any worker starts."""

from roll.config.loader import load_config
from roll.config.schema import (
    AgenticConfig,
    CustomEnv,
    EnvManagerConfig,
    GeneratingArgs,
    ModelArgs,
    StrategyArgs,
    TrainingArgs,
    WorkerConfig,
)
from roll.config.validate import finalize, placement_plan_text, validate
from roll.errors import ConfigError

__all__ = [
    "AgenticConfig",
    "ConfigError",
    "CustomEnv",
    "EnvManagerConfig",
    "GeneratingArgs",
    "ModelArgs",
    "StrategyArgs",
    "TrainingArgs",
    "WorkerConfig",
    "finalize",
    "load_and_validate",
    "load_config",
    "placement_plan_text",
    "validate",
]


def load_and_validate(config_path, config_name, overrides=None, check_environment=True):
    """Load, derive and validate; returns (config, resolved dict, placement plan). Raises ConfigError."""
    config, resolved = load_config(config_path, config_name, overrides)
    finalize(config)
    return config, resolved, validate(config, check_environment=check_environment)
