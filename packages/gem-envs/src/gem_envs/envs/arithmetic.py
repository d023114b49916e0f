"""Arithmetic: one integer expression per episode, answered in `\\boxed{}` (GEM's single-turn math protocol)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from gem_envs.core import Env, StepResult
from gem_envs.envs._common import TERMINAL_STATE, check, check_int
from gem_envs.parsing import last_boxed

VALID_OPERATORS = "+-*"


def evaluate(operands: list[int], operators: list[str]) -> int:
    """Value of `operands[0] op operands[1] ...` with `*` binding tighter than `+` and `-`."""
    total, sign, term = 0, 1, operands[0]
    for op, value in zip(operators, operands[1:], strict=True):
        if op == "*":
            term *= value
        else:
            total += sign * term
            sign, term = (1 if op == "+" else -1), value
    return total + sign * term


def parse_number(text: str) -> Fraction | None:
    """An answer such as "42", "-7", "1,024" or "3.0" as an exact number; None when it is not one."""
    try:
        return Fraction(text.replace(",", "").replace("$", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


class ArithmeticEnv(Env):
    """Single turn: the answer is the last `\\boxed{}`; 1.0 if it equals the expression's value, else 0.0.

    `num_operands` is a count or an inclusive (low, high) range drawn per question.
    """

    def __init__(
        self,
        min_operand: int = 1,
        max_operand: int = 100,
        num_operands: int | tuple[int, int] = (2, 3),
        operators: str = VALID_OPERATORS,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        check_int("min_operand", min_operand, 0)
        check_int("max_operand", max_operand, min_operand)
        if isinstance(num_operands, int):
            num_operands = (num_operands, num_operands)
        pair = isinstance(num_operands, (tuple, list)) and len(num_operands) == 2
        check(pair, "num_operands", f"must be an int or a (low, high) pair, got {num_operands!r}")
        low, high = num_operands
        check_int("num_operands", low, 2)
        check_int("num_operands", high, low)
        check(
            isinstance(operators, str) and bool(operators) and set(operators) <= set(VALID_OPERATORS),
            "operators",
            f"must be a non-empty string of the operators {VALID_OPERATORS!r}, got {operators!r}",
        )
        self.min_operand, self.max_operand = min_operand, max_operand
        self.num_operands = (low, high)
        self.operators = operators

    def _reset(self) -> tuple[str, dict[str, Any]]:
        count = self.rng.randint(*self.num_operands)
        operands = [self.rng.randint(self.min_operand, self.max_operand) for _ in range(count)]
        operators = [self.rng.choice(self.operators) for _ in range(count - 1)]
        self.answer = evaluate(operands, operators)
        expression = str(operands[0]) + "".join(
            f" {op} {value}" for op, value in zip(operators, operands[1:], strict=True)
        )
        self.question = f"Compute {expression}. Put your final answer within \\boxed{{}}."
        return self.question, {}

    def _step(self, action: str) -> StepResult:
        boxed = last_boxed(action)
        correct = boxed is not None and parse_number(boxed) == self.answer
        return TERMINAL_STATE, 1.0 if correct else 0.0, True, True, {"correct": correct}

    def sample_random_action(self) -> str:
        return f"\\boxed{{{self.action_rng.randint(self.min_operand, self.max_operand)}}}"
