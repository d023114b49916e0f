"""GEM game conventions shared by the `\\boxed{}` games, and constructor-argument checks for every env here.

GEM's rules (gem/utils/constants.py and each game's `step`): a reply with nothing parsable is a format error
(-0.1, the episode ends); a parsable but illegal move pays 0.0 and play goes on; the turn limit is checked
after the win check and ends the episode with terminated and truncated both set.
"""

from __future__ import annotations

import abc
import random
from typing import Any

from gem_envs.core import Env, StepResult
from gem_envs.errors import EnvConfigError
from gem_envs.parsing import last_boxed

# GEM's LanguageGameReward and single-turn terminal observation (fullwidth bars, as GEM spells it).
SUCCESS_REWARD = 1.0
STEP_REWARD = 0.0
FAIL_REWARD = 0.0
INVALID_ACTION_REWARD = 0.0
FORMAT_ERROR_REWARD = -0.1
TERMINAL_STATE = "<｜TERMINAL_STATE｜>"


def check(ok: bool, field: str, problem: str) -> None:
    """Raise EnvConfigError naming `field` unless `ok`."""
    if not ok:
        raise EnvConfigError(f"{field}: {problem}")


def check_int(field: str, value: Any, minimum: int) -> None:
    """`value` must be an int (not a bool) no smaller than `minimum`."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    check(ok, field, f"must be an integer >= {minimum}, got {value!r}")


def random_preset(**fields: Any) -> bool:
    """True when every preset field is None (GEM's "random" ids); a mix of None and values is an error."""
    unset = [name for name, value in fields.items() if value is None]
    if unset and len(unset) < len(fields):
        given = [name for name in fields if name not in unset]
        raise EnvConfigError(
            f"{', '.join(unset)}: None asks for a random preset, which also draws {', '.join(given)}; "
            f"set all of {', '.join(fields)} or none of them"
        )
    return bool(unset)


class BoxedGame(Env):
    """A GEM game: instructions on reset, the board in `info["suffix"]`, moves in the last `\\boxed{}`.

    Subclasses draw a random preset in `_sample_preset` (only when `self.is_random`), start a game in
    `_new_game`, turn the boxed text into a move in `_parse` (None = format error) and apply it in `_play`.
    """

    format_error_text = "At turn {turn}, you did not provide a valid guess."
    max_turns_text = "You have reached the maximum number of turns."
    is_random: bool
    max_turns: int

    def _reset(self) -> tuple[str, dict[str, Any]]:
        if self.is_random:
            self._sample_preset()
        self.turn_count = 0
        self._new_game()
        return self._instructions(), self._info()

    def _step(self, action: str) -> StepResult:
        self.turn_count += 1
        boxed = last_boxed(action)
        move = None if boxed is None else self._parse(boxed.strip())
        if move is None:
            text = self.format_error_text.format(turn=self.turn_count)
            return text, FORMAT_ERROR_REWARD, True, self.turn_count == self.max_turns, self._info()
        text, reward, finished = self._play(move)
        if finished:
            return text, reward, True, False, self._info()
        if self.turn_count >= self.max_turns:
            text = self.max_turns_text.format(max_turns=self.max_turns)
            return text, self._max_turns_reward(move, reward), True, True, self._info()
        return text, reward, False, False, self._info()

    def sample_random_action(self) -> str:
        return self._random_action(self.action_rng)

    def _info(self) -> dict[str, Any]:
        return {"suffix": self._suffix()}

    def _max_turns_reward(self, move: Any, reward: float) -> float:
        """The reward of the step that hits the turn limit; GEM games with a soft score override this."""
        return reward

    @abc.abstractmethod
    def _sample_preset(self) -> None:
        """Draw a random preset from `self.rng` (GEM's -random ids)."""

    @abc.abstractmethod
    def _new_game(self) -> None:
        """Start a game on the current preset, drawing from `self.rng`."""

    @abc.abstractmethod
    def _instructions(self) -> str:
        """The first observation: rules and an example action."""

    @abc.abstractmethod
    def _suffix(self) -> str:
        """The board or prompt GEM appends to every observation."""

    @abc.abstractmethod
    def _parse(self, boxed: str) -> Any:
        """The move in the boxed text, or None when it does not parse (a format error)."""

    @abc.abstractmethod
    def _play(self, move: Any) -> tuple[str, float, bool]:
        """Apply a parsed move: (observation, reward, finished by a win or a loss)."""

    @abc.abstractmethod
    def _random_action(self, rng: random.Random) -> str:
        """A well-formed action; instructions draw their example from `self.rng`, samplers from `action_rng`."""
