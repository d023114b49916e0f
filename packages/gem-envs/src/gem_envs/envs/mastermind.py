"""Mastermind (GEM): find a secret code from black/white peg feedback, answering `\\boxed{1 2 3 4}`."""

from __future__ import annotations

import random
import re
from collections import Counter

from gem_envs.envs._common import (
    INVALID_ACTION_REWARD,
    BoxedGame,
    check,
    check_int,
    random_preset,
)

_DIGITS = re.compile(r"\d+(?:\s+\d+)*")
# GEM's random preset: (code_length, num_numbers, max_turns).
_RANDOM_PRESETS = ((2, 4, 10), (4, 6, 20), (4, 8, 30))


def score(code: list[int], guess: list[int]) -> tuple[int, int]:
    """(black, white) pegs: right digit in the right place, right digit in the wrong place."""
    black = sum(c == g for c, g in zip(code, guess, strict=True))
    common = sum((Counter(code) & Counter(guess)).values())
    return black, common - black


class MastermindEnv(BoxedGame):
    """GEM's rules; each guess pays (black pegs above the best so far) / code_length, so a solve sums to 1."""

    def __init__(
        self,
        code_length: int | None = 4,
        num_numbers: int | None = 6,
        duplicate_numbers: bool = False,
        max_turns: int | None = 20,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        check(
            isinstance(duplicate_numbers, bool),
            "duplicate_numbers",
            f"must be a bool, got {duplicate_numbers!r}",
        )
        self.is_random = random_preset(code_length=code_length, num_numbers=num_numbers, max_turns=max_turns)
        if not self.is_random:
            check_int("code_length", code_length, 1)
            check_int("num_numbers", num_numbers, 1)
            check_int("max_turns", max_turns, 1)
            check(
                duplicate_numbers or code_length <= num_numbers,
                "code_length",
                f"{code_length} exceeds num_numbers ({num_numbers}) while duplicate_numbers is False",
            )
        self.code_length, self.num_numbers, self.max_turns = code_length, num_numbers, max_turns
        self.duplicate_numbers = duplicate_numbers

    def _sample_preset(self) -> None:
        self.code_length, self.num_numbers, self.max_turns = self.rng.choice(_RANDOM_PRESETS)

    def _new_game(self) -> None:
        self.code = self._draw_code(self.rng)
        self.previous_guesses: set[tuple[int, ...]] = set()
        self.best_black = 0

    def _draw_code(self, rng: random.Random) -> list[int]:
        digits = range(1, self.num_numbers + 1)
        if self.duplicate_numbers:
            return rng.choices(digits, k=self.code_length)
        return rng.sample(digits, self.code_length)

    def _instructions(self) -> str:
        duplicates = "allowed" if self.duplicate_numbers else "not allowed"
        return (
            "You are playing Mastermind.\n"
            f"You have to guess the secret {self.code_length} digit code within {self.max_turns} turns.\n"
            f"The code consists of digits from 1 to {self.num_numbers} (inclusive). "
            f"Duplicate numbers are {duplicates}.\n"
            "After you enter your guess, I will mark your guess with black and white pegs, where a black peg "
            "indicates a correct digit in the correct position, while a white peg indicates a correct digit in "
            "the wrong position.\n"
            f"After thinking, format your final answer inside \\boxed{{...}}, for example, {self._random_action(self.rng)}.\n"
            "As you play, the history of your guesses will be appended below. Use the information to complete "
            "the game before you run out of guesses.\n"
            "Enter your first guess to start the game.\n"
        )

    def _suffix(self) -> str:
        return "Enter your guess."

    def _parse(self, boxed: str) -> list[int] | None:
        return [int(d) for d in boxed.split()] if _DIGITS.fullmatch(boxed) else None

    def _play(self, guess: list[int]) -> tuple[str, float, bool]:
        turn = self.turn_count
        if len(guess) != self.code_length:
            text = (
                f"At turn {turn}, you guessed {guess} which has {len(guess)} entries but the code has length "
                f"{self.code_length}."
            )
            return text, INVALID_ACTION_REWARD, False
        if any(not 1 <= d <= self.num_numbers for d in guess):
            text = f"At turn {turn}, you guessed {guess}, which has numbers outside the range 1 to {self.num_numbers}."
            return text, INVALID_ACTION_REWARD, False
        if tuple(guess) in self.previous_guesses:
            return (
                f"At turn {turn}, you guessed {guess}, which has been already guessed before.",
                INVALID_ACTION_REWARD,
                False,
            )
        self.previous_guesses.add(tuple(guess))
        black, white = score(self.code, guess)
        reward = max(black - self.best_black, 0) / self.code_length
        self.best_black = max(self.best_black, black)
        if black == self.code_length:
            return f"Congratulations! You guessed the correct code {self.code} in {turn} turns.", reward, True
        text = f"At turn {turn}, you guessed {guess}. This guess receives {black} black peg(s) and {white} white peg(s)."
        return text, reward, False

    def _random_action(self, rng: random.Random) -> str:
        return "\\boxed{" + " ".join(map(str, self._draw_code(rng))) + "}"
