"""GuessTheNumber (GEM): find a hidden integer from higher/lower hints, answering `\\boxed{N}`."""

from __future__ import annotations

import math
import random
import re

from gem_envs.envs._common import (
    INVALID_ACTION_REWARD,
    STEP_REWARD,
    SUCCESS_REWARD,
    BoxedGame,
    check,
    check_int,
    random_preset,
)

_NUMBER = re.compile(r"\d+")


class GuessTheNumberEnv(BoxedGame):
    """GEM's rules; at the turn limit a valid guess earns 1 - |guess - target| / (max - min)."""

    def __init__(
        self,
        min_number: int | None = 1,
        max_number: int | None = 20,
        max_turns: int | None = 20,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.is_random = random_preset(min_number=min_number, max_number=max_number, max_turns=max_turns)
        if not self.is_random:
            check_int("min_number", min_number, 1)
            check_int("max_number", max_number, 1)
            check_int("max_turns", max_turns, 1)
            check(
                min_number < max_number,
                "max_number",
                f"must exceed min_number ({min_number}), got {max_number}",
            )
        self.min_number, self.max_number, self.max_turns = min_number, max_number, max_turns

    def _sample_preset(self) -> None:
        self.min_number = self.rng.randint(1, 10)
        self.max_number = self.rng.randint(self.min_number + 5, self.min_number + 50)
        self.max_turns = math.ceil(math.sqrt(self.max_number - self.min_number)) + 1

    def _new_game(self) -> None:
        self.target = self.rng.randint(self.min_number, self.max_number)
        self.previous_guesses: set[int] = set()

    def _instructions(self) -> str:
        return (
            "You are playing Guess The Number.\n"
            f"You have to guess the number between {self.min_number} and {self.max_number} (inclusive) "
            f"within {self.max_turns} turns.\n"
            "As you enter your guess, the game will provide you with hints such as the target number is "
            "'higher' or 'lower'.\n"
            "You may provide your response in any manner. Only the number that is wrapped inside \\boxed{} "
            f"will be considered as your guess, for example, {self._random_action(self.rng)}.\n"
            "As you play, the history of your guesses will be appended below. Use the information to complete "
            "the game before you run out of guesses.\n"
            "Enter your first guess to start the game.\n"
        )

    def _suffix(self) -> str:
        return "Enter your next guess."

    def _parse(self, boxed: str) -> int | None:
        return int(boxed) if _NUMBER.fullmatch(boxed) else None

    def _play(self, guess: int) -> tuple[str, float, bool]:
        turn = self.turn_count
        if not self.min_number <= guess <= self.max_number:
            return (
                f"At turn {turn}, you guessed {guess}, which is outside the range specified.",
                INVALID_ACTION_REWARD,
                False,
            )
        if guess in self.previous_guesses:
            text = f"At turn {turn}, you guessed {guess}, which has been already guessed before."
            return text, INVALID_ACTION_REWARD, False
        self.previous_guesses.add(guess)
        if guess == self.target:
            return (
                f"Congratulations! You guessed the correct number {self.target} in {turn} turns.",
                SUCCESS_REWARD,
                True,
            )
        hint = "lower" if guess > self.target else "higher"
        return (
            f"At turn {turn}, you guessed {guess}, and the target number is {hint} than {guess}.",
            STEP_REWARD,
            False,
        )

    def _max_turns_reward(self, guess: int, reward: float) -> float:
        if not self.min_number <= guess <= self.max_number:
            return INVALID_ACTION_REWARD
        return 1.0 - abs(guess - self.target) / (self.max_number - self.min_number)

    def _random_action(self, rng: random.Random) -> str:
        return f"\\boxed{{{rng.randint(self.min_number, self.max_number)}}}"
