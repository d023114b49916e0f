"""A Sokoban expert with the trainer's `generate` signature: it reads the board from the prompt and answers
the first move of an optimal plan, so expert episodes run through roll's own env manager and token layout."""

from __future__ import annotations

from collections.abc import Sequence

from gem_envs.envs.sokoban.level import GEM_SYMBOLS, Level
from gem_envs.envs.sokoban.solver import solve
from roll.strategies.base import GenerationOutput

ACTION_NAMES = {"up": "Up", "down": "Down", "left": "Left", "right": "Right"}
_BOARD_CHARS = frozenset("".join(GEM_SYMBOLS) + " ")


def last_board(text: str) -> Level | None:
    """The last Sokoban board (rows of `# _ O √ X P S`, 3+ rows of equal width) in `text`, or None."""
    runs: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and set(stripped) <= _BOARD_CHARS and "#" in stripped:
            runs[-1].append(stripped)
        elif runs[-1]:
            runs.append([])
    for rows in reversed(runs):
        if len(rows) >= 3 and len({len(r) for r in rows}) == 1:
            try:
                return Level.from_text("\n".join(rows))
            except ValueError:
                continue
    return None


def expert_action(text: str, max_moves: int = 50) -> str:
    """`<answer>Dir</answer>` for the first move of an optimal plan from the last board in `text`.

    A prompt without a solvable board gets `<answer>Up</answer>` (any valid move; it never happens on
    the levels gem_envs generates, which are solvable within their step limit)."""
    level = last_board(text)
    plan = solve(level, max_moves) if level is not None and not level.solved else None
    move = plan[0] if plan else "up"
    return f"<answer>{ACTION_NAMES[move]}</answer>"


class SokobanExpert:
    """`generate(prompts, budgets)` as roll's env manager calls it: decoded prompt → expert reply ids + EOS."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id

    def __call__(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int]) -> list[GenerationOutput]:
        outputs = []
        for prompt, budget in zip(prompts, budgets, strict=True):
            text = self.tokenizer.decode(list(prompt), skip_special_tokens=True)
            ids = self.tokenizer(expert_action(text), add_special_tokens=False)["input_ids"]
            ids = [*ids, self.eos_id][:budget]
            outputs.append(GenerationOutput(ids, [0.0] * len(ids), "stop"))
        return outputs
