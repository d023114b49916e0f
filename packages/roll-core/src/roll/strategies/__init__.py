"""Strategies: one interface (`roll.strategies.base`), a registry by name (`roll.strategies.registry`)."""

from roll.strategies.registry import (
    StrategyUnavailable,
    known_strategies,
    load_strategy_class,
    strategy_spec,
    unavailable_reason,
)

__all__ = [
    "StrategyUnavailable",
    "known_strategies",
    "load_strategy_class",
    "strategy_spec",
    "unavailable_reason",
]
