"""roll-core's errors form one tree (roll.errors): a caller catches RollError for any of them."""

from __future__ import annotations

import inspect

import pytest

import roll.errors
from roll.config import load_config
from roll.errors import ConfigError, RollError
from roll.strategies.registry import StrategyUnavailable, load_strategy_class


def test_every_error_is_a_roll_error_defined_once():
    classes = [
        c for _, c in inspect.getmembers(roll.errors, inspect.isclass) if c.__module__ == "roll.errors"
    ]
    assert len(classes) >= 8 and all(issubclass(c, RollError) for c in classes)
    assert len({c.__name__ for c in classes}) == len(classes)


def test_raised_errors_are_caught_as_roll_errors_and_as_their_builtin_kind(tmp_path):
    (tmp_path / "bad.yaml").write_text("max_steps: [not, a, number]\n")
    with pytest.raises(RollError) as info:
        load_config(tmp_path, "bad")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert info.value.problems[0][0] == "max_steps"
    with pytest.raises(RollError) as info:
        load_strategy_class("fsdp2_train")  # recognised, not built in this release
    assert isinstance(info.value, StrategyUnavailable) and isinstance(info.value, RuntimeError)
