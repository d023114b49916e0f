"""Sokoban in two dialects over one engine: GEM's (`game:Sokoban-v0-*`) and ROLL's (`sokoban`, ...).

level (immutable positions), generator (levels solvable within a move budget), solver (optimal in moves),
board (play state and text), gem_style and roll_style (the envs).
"""

from gem_envs.envs.sokoban.gem_style import SokobanEnv
from gem_envs.envs.sokoban.level import DIRECTIONS, Level
from gem_envs.envs.sokoban.roll_style import RollSokobanEnv
from gem_envs.envs.sokoban.solver import solve

__all__ = ["DIRECTIONS", "Level", "RollSokobanEnv", "SokobanEnv", "solve"]
