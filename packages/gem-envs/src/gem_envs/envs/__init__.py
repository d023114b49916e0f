"""The built-in catalogue: every id gem_envs registers, with its preset.

Entry points are "module:Class" strings so that importing gem_envs imports no env module until an env
of that kind is made. Ids and presets follow GEM (`game:*`, `math:*`) and ROLL's env catalogue
(`sokoban`, `frozen_lake`, `SimpleSokoban`, ...).
"""

from gem_envs.registry import register

_SOKOBAN = "gem_envs.envs.sokoban.gem_style:SokobanEnv"
_ROLL_SOKOBAN = "gem_envs.envs.sokoban.roll_style:RollSokobanEnv"
_FROZEN_LAKE = "gem_envs.envs.frozen_lake:FrozenLakeEnv"
_GUESS = "gem_envs.envs.guess_the_number:GuessTheNumberEnv"
_MASTERMIND = "gem_envs.envs.mastermind:MastermindEnv"
_MINESWEEPER = "gem_envs.envs.minesweeper:MinesweeperEnv"
_GAME2048 = "gem_envs.envs.game2048:Game2048Env"
_ARITHMETIC = "gem_envs.envs.arithmetic:ArithmeticEnv"

# GEM-style Sokoban: \boxed{up|down|left|right}; None means "a random preset on every reset".
register("game:Sokoban-v0-easy", _SOKOBAN, dim_room=(6, 6), num_boxes=2, max_turns=20)
register("game:Sokoban-v0-hard", _SOKOBAN, dim_room=(8, 8), num_boxes=4, max_turns=50)
register("game:Sokoban-v0-random", _SOKOBAN, dim_room=None, num_boxes=None, max_turns=None)

# ROLL-style Sokoban: <answer>Up</answer>, shaped rewards; the catalogue entries of ROLL's traj_envs.yaml.
register("sokoban", _ROLL_SOKOBAN)
register("SimpleSokoban", _ROLL_SOKOBAN, dim_room=(6, 6), num_boxes=1, max_steps=10, format_penalty=-0.15)
register(
    "LargerSokoban",
    _ROLL_SOKOBAN,
    dim_room=(10, 10),
    num_boxes=2,
    max_steps=10,
    search_depth=10,
    format_penalty=-0.15,
)
register(
    "SokobanDifferentGridVocab",
    _ROLL_SOKOBAN,
    dim_room=(6, 6),
    num_boxes=1,
    max_steps=10,
    search_depth=30,
    format_penalty=-0.15,
    grid_lookup={0: "W", 1: ".", 2: "G", 3: "C", 4: "B", 5: "A", 6: "@"},
    grid_vocab={
        "W": "wall",
        ".": "empty",
        "G": "target",
        "C": "box on target",
        "B": "box",
        "A": "player",
        "@": "player on target",
    },
)

# FrozenLake with ROLL's semantics (random solvable map per seed, <answer> actions, non-ending format penalty).
register("frozen_lake", _FROZEN_LAKE)
register("FrozenLake", _FROZEN_LAKE, is_slippery=False, max_steps=10, format_penalty=-0.01)
register(
    "FrozenLakeThink",
    _FROZEN_LAKE,
    is_slippery=False,
    max_steps=10,
    format_penalty=-0.01,
    action_pattern=r"<think>(.*?)</think>\s*<answer>(.*?)</answer>",
)
register("game:FrozenLake-v0-easy", _FROZEN_LAKE, size=4, p=0.8, is_slippery=False, max_steps=20)
register("game:FrozenLake-v0-hard", _FROZEN_LAKE, size=8, p=0.8, is_slippery=True, max_steps=100)

# GEM's other game presets.
register("game:GuessTheNumber-v0-easy", _GUESS, min_number=1, max_number=10, max_turns=4)
register("game:GuessTheNumber-v0-hard", _GUESS, min_number=1, max_number=50, max_turns=7)
register("game:GuessTheNumber-v0-random", _GUESS, min_number=None, max_number=None, max_turns=None)
register(
    "game:Mastermind-v0-easy",
    _MASTERMIND,
    code_length=2,
    num_numbers=6,
    max_turns=10,
    duplicate_numbers=False,
)
register(
    "game:Mastermind-v0-hard",
    _MASTERMIND,
    code_length=4,
    num_numbers=8,
    max_turns=30,
    duplicate_numbers=False,
)
register(
    "game:Mastermind-v0-random",
    _MASTERMIND,
    code_length=None,
    num_numbers=None,
    max_turns=None,
    duplicate_numbers=False,
)
register("game:Minesweeper-v0-easy", _MINESWEEPER, rows=5, cols=5, num_mines=5, max_turns=25)
register("game:Minesweeper-v0-hard", _MINESWEEPER, rows=8, cols=8, num_mines=12, max_turns=64)
register("game:Minesweeper-v0-random", _MINESWEEPER, rows=None, cols=None, num_mines=None, max_turns=None)
register("game:Game2048-v0-easy", _GAME2048, target_tile=64, max_turns=50)
register("game:Game2048-v0-hard", _GAME2048, target_tile=512, max_turns=50)
register("game:Game2048-v0-extreme-hard", _GAME2048, target_tile=2048, max_turns=100)
register("game:Game2048-v0-random", _GAME2048, target_tile=None, max_turns=None)

# Single-turn RL: one arithmetic question, answer in \boxed{}, reward 1/0.
register("math:Arithmetic-v0", _ARITHMETIC)
