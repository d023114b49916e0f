"""GEM's \\boxed{} games: GuessTheNumber, Mastermind, Minesweeper, Game2048."""

import math
import random

import pytest

import gem_envs
from gem_envs import EnvConfigError
from gem_envs.envs.game2048 import Game2048Env, slide, slide_line
from gem_envs.envs.guess_the_number import GuessTheNumberEnv
from gem_envs.envs.mastermind import MastermindEnv, score
from gem_envs.envs.minesweeper import MinesweeperEnv

GAMES = ["GuessTheNumber", "Mastermind", "Minesweeper", "Game2048"]
EASY = [f"game:{game}-v0-easy" for game in GAMES]
RANDOM = [f"game:{game}-v0-random" for game in GAMES]


def started(env_id_or_env, seed=0, **kwargs):
    env = gem_envs.make(env_id_or_env, **kwargs) if isinstance(env_id_or_env, str) else env_id_or_env
    env.reset(seed=seed)
    return env


def transcript(env, seed, steps=12, other=None):
    """Observations, rewards and suffixes of an episode played with the env's own sampled actions."""
    record = [env.reset(seed=seed)]
    for _ in range(steps):
        if other is not None:
            other.reset()
            other.step(other.sample_random_action())
        result = env.step(env.sample_random_action())
        record.append(result)
        if result[2] or result[3]:
            break
    return record


# ---------------------------------------------------------------- conventions shared by every game


@pytest.mark.parametrize("env_id", EASY + RANDOM)
def test_format_error_ends_the_episode_with_minus_point_one(env_id):
    env = started(env_id)
    observation, reward, terminated, truncated, info = env.step("my answer is up, 3")
    assert reward == -0.1 and terminated and not truncated
    assert observation.startswith("At turn 1, you did not provide a valid")
    assert isinstance(info["suffix"], str) and info["suffix"]


@pytest.mark.parametrize("env_id", EASY + RANDOM)
def test_reset_gives_instructions_and_suffix_and_sampled_actions_parse(env_id):
    env = gem_envs.make(env_id)
    observation, info = env.reset(seed=1)
    assert observation.startswith("You are playing") and "\\boxed{" in observation
    assert (
        info["suffix"].rstrip().endswith(("Enter your guess.", "Enter your next guess.", "Enter your move."))
    )
    for _ in range(5):
        assert env.step(env.sample_random_action())[1] != -0.1
        if not env.episode_running:
            env.reset()


@pytest.mark.parametrize("env_id", EASY + RANDOM)
def test_same_seed_same_episode_and_envs_do_not_share_rng(env_id):
    a, b = gem_envs.make(env_id), gem_envs.make(env_id)
    expected = transcript(a, 5)
    assert transcript(a, 5) == expected
    assert transcript(a, 5, other=b) == expected
    assert any(transcript(a, seed) != expected for seed in range(6, 9))


def test_sampled_actions_do_not_mirror_the_episode_draws():
    env = gem_envs.make("game:GuessTheNumber-v0-hard")
    hits = 0
    for seed in range(50):
        env.reset(seed=seed)
        hits += env.sample_random_action() == f"\\boxed{{{env.target}}}"
    assert hits < 10  # 1 in 50 expected; an action stream seeded like the episode's would hit every time


def test_global_random_state_is_untouched():
    state = random.getstate()
    for env_id in EASY + RANDOM:
        transcript(gem_envs.make(env_id), 0)
    assert random.getstate() == state


@pytest.mark.parametrize(
    ("env_id", "preset"),
    [
        (RANDOM[0], lambda e: (e.min_number, e.max_number, e.max_turns)),
        (RANDOM[1], lambda e: (e.code_length, e.num_numbers, e.max_turns)),
        (RANDOM[2], lambda e: (e.rows, e.num_mines, e.max_turns)),
        (RANDOM[3], lambda e: (e.target_tile, e.max_turns)),
    ],
)
def test_random_presets_are_redrawn_on_every_reset(env_id, preset):
    env = gem_envs.make(env_id)
    seen = set()
    for seed in range(40):
        env.reset(seed=seed)
        seen.add(preset(env))
    assert len(seen) >= 3


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (GuessTheNumberEnv, {"min_number": 5, "max_number": 3}, "max_number"),
        (GuessTheNumberEnv, {"min_number": 0}, "min_number"),
        (GuessTheNumberEnv, {"max_turns": 0}, "max_turns"),
        (GuessTheNumberEnv, {"min_number": None}, "min_number"),  # half a random preset
        (MastermindEnv, {"code_length": 5, "num_numbers": 4}, "code_length"),
        (MastermindEnv, {"num_numbers": 0}, "num_numbers"),
        (MastermindEnv, {"duplicate_numbers": "no"}, "duplicate_numbers"),
        (MinesweeperEnv, {"rows": 5, "cols": 5, "num_mines": 17}, "num_mines"),
        (MinesweeperEnv, {"rows": 0}, "rows"),
        (MinesweeperEnv, {"num_mines": 0}, "num_mines"),
        (Game2048Env, {"target_tile": 100}, "target_tile"),
        (Game2048Env, {"target_tile": 4}, "target_tile"),
        (Game2048Env, {"board_size": 1}, "board_size"),
        (Game2048Env, {"max_turns": -1}, "max_turns"),
    ],
)
def test_bad_constructor_values_name_the_field(cls, kwargs, field):
    with pytest.raises(EnvConfigError, match=field):
        cls(**kwargs)


# ---------------------------------------------------------------- GuessTheNumber


def test_guess_the_number_hints_lead_to_a_win():
    env = started("game:GuessTheNumber-v0-hard", seed=3)
    low, high = 1, 50
    for _ in range(env.max_turns):
        guess = (low + high) // 2
        observation, reward, terminated, truncated, _ = env.step(f"I guess \\boxed{{{guess}}}")
        if terminated:
            break
        assert (
            reward == 0.0
            and f"the target number is {'higher' if env.target > guess else 'lower'}" in observation
        )
        low, high = (guess + 1, high) if env.target > guess else (low, guess - 1)
    assert (reward, truncated) == (1.0, False)
    assert (
        observation
        == f"Congratulations! You guessed the correct number {env.target} in {env.turn_count} turns."
    )


def test_guess_the_number_invalid_guesses_pay_zero_and_play_on():
    env = started("game:GuessTheNumber-v0-easy")
    wrong = 1 if env.target != 1 else 2
    assert env.step("\\boxed{11}")[:3] == (
        "At turn 1, you guessed 11, which is outside the range specified.",
        0.0,
        False,
    )
    env.step(f"\\boxed{{{wrong}}}")
    observation, reward, terminated, _, _ = env.step(f"\\boxed{{{wrong}}}")
    assert "already guessed before" in observation and reward == 0.0 and not terminated
    # The fourth turn is the last: GEM's soft reward for the closeness of the final guess, repeated or not.
    observation, reward, terminated, truncated, _ = env.step(f"\\boxed{{{wrong}}}")
    assert terminated and truncated and observation == "You have reached the maximum number of turns."
    assert reward == pytest.approx(1 - abs(wrong - env.target) / 9)
    # GEM calls \boxed{0} a format error (a falsy guess); here it is simply out of range.
    assert "outside the range" in started("game:GuessTheNumber-v0-easy").step("\\boxed{0}")[0]


def test_guess_the_number_random_preset_follows_gem():
    env = gem_envs.make("game:GuessTheNumber-v0-random")
    for seed in range(30):
        env.reset(seed=seed)
        assert 1 <= env.min_number <= 10 and env.min_number + 5 <= env.max_number <= env.min_number + 50
        assert env.max_turns == math.ceil(math.sqrt(env.max_number - env.min_number)) + 1


# ---------------------------------------------------------------- Mastermind


def test_mastermind_score_counts_black_and_white_pegs():
    assert score([1, 2, 3, 4], [1, 3, 2, 6]) == (1, 2)
    assert score([1, 1, 2, 2], [1, 2, 1, 1]) == (1, 2)
    assert score([5, 6], [5, 6]) == (2, 0)


def test_mastermind_pays_new_black_pegs_so_a_solve_sums_to_one():
    env = started("game:Mastermind-v0-hard", seed=2)
    code = env.code
    others = [d for d in range(1, 9) if d not in code]
    guesses = [[code[0], *others[:3]], [*others[:3], code[3]], [code[0], code[1], *others[:2]], code]
    rewards = []
    for guess in guesses:
        observation, reward, terminated, truncated, _ = env.step("\\boxed{" + " ".join(map(str, guess)) + "}")
        rewards.append(reward)
    assert rewards == [0.25, 0.0, 0.25, 0.5] and sum(rewards) == 1.0
    assert terminated and not truncated
    assert observation == f"Congratulations! You guessed the correct code {code} in 4 turns."


def test_mastermind_feedback_and_invalid_guesses():
    env = started("game:Mastermind-v0-hard", seed=4)
    guess = [*[d for d in range(1, 9) if d not in env.code][:3], env.code[0]]
    observation = env.step("\\boxed{" + " ".join(map(str, guess)) + "}")[0]
    assert (
        observation
        == f"At turn 1, you guessed {guess}. This guess receives 0 black peg(s) and 1 white peg(s)."
    )
    assert "which has 3 entries but the code has length 4" in env.step("\\boxed{1 2 3}")[0]
    assert "outside the range 1 to 8" in env.step("\\boxed{1 2 3 9}")[0]
    observation, reward, terminated, _, _ = env.step("\\boxed{" + " ".join(map(str, guess)) + "}")
    assert "already guessed before" in observation and reward == 0.0 and not terminated


def test_mastermind_turn_limit_and_duplicates():
    env = started("game:Mastermind-v0-easy")
    results = [env.step("\\boxed{7 7}") for _ in range(10)]
    assert [r[2] for r in results] == [False] * 9 + [True] and results[-1][3]
    assert results[-1][0] == "You have reached the maximum number of turns."
    dup = MastermindEnv(code_length=4, num_numbers=2, duplicate_numbers=True)
    assert any(len(set(started(dup, seed).code)) < 4 for seed in range(5))
    assert all(len(set(started(env, seed).code)) == 2 for seed in range(20))


# ---------------------------------------------------------------- Minesweeper


def board_env(seed=0):
    """A reset 6x6 board with 5 mines and turns to spare."""
    return started(MinesweeperEnv(rows=6, cols=6, num_mines=5, max_turns=100), seed)


def cell_action(kind, cell):
    return f"\\boxed{{{kind} {cell[0]} {cell[1]}}}"


def mines(env):
    return [(r, c) for r in range(env.rows) for c in range(env.cols) if env.grid[r][c] == -1]


def test_minesweeper_first_reveal_is_safe_and_mines_avoid_its_block():
    for seed in range(50):
        env = board_env(seed)
        r, c = seed % 6, seed // 6 % 6
        _, reward, terminated, _, _ = env.step(cell_action("reveal", (r, c)))
        assert not terminated and reward > 0 and len(mines(env)) == 5
        assert all(max(abs(mr - r), abs(mc - c)) > 1 for mr, mc in mines(env))
        assert env.grid[r][c] == 0 and reward == sum(map(sum, env.revealed)) / 31


@pytest.mark.parametrize("flags_first", [True, False])
def test_minesweeper_win_needs_every_safe_cell_revealed_and_every_mine_flagged(flags_first):
    env = board_env(seed=7)
    rewards = [env.step("\\boxed{reveal 0 0}")[1]]
    flags = [cell_action("flag", cell) for cell in mines(env)]
    hidden = [(r, c) for r in range(6) for c in range(6) if env.grid[r][c] != -1 and not env.revealed[r][c]]
    reveals = [cell_action("reveal", cell) for cell in hidden]
    actions = flags + reveals if flags_first else reveals + flags
    for action in actions:
        if not env.episode_running:
            break
        observation, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
    assert observation == "Congratulations! You have successfully cleared the Minesweeper board."
    assert terminated and not truncated and sum(rewards) == pytest.approx(1.0)


def test_minesweeper_mine_and_invalid_moves():
    env = board_env(seed=1)
    env.step("\\boxed{reveal 0 0}")
    hidden = next((r, c) for r in range(6) for c in range(6) if not env.revealed[r][c])
    opened = next((r, c) for r in range(6) for c in range(6) if env.revealed[r][c])
    assert env.step(cell_action("reveal", opened))[:3] == (
        f"At turn 2, you chose to reveal cell {opened}, which has already been revealed.",
        0.0,
        False,
    )
    assert "which has already been revealed" in env.step(cell_action("flag", opened))[0]
    assert env.step(cell_action("flag", hidden))[0] == f"At turn 4, you added a flag on cell {hidden}."
    assert "which has already been flagged" in env.step(cell_action("reveal", hidden))[0]
    assert env.step(cell_action("flag", hidden))[0] == f"At turn 6, you removed a flag on cell {hidden}."
    assert "outside the bounds" in env.step("\\boxed{reveal 6 0}")[0]
    assert "invalid action 'dig'" in env.step("\\boxed{DIG 1 1}")[0]
    mine = mines(env)[0]
    observation, reward, terminated, truncated, info = env.step(cell_action("Reveal", mine))
    assert observation == f"Game over! You hit a mine at {mine}" and reward == 0.0
    assert terminated and not truncated and " * " in info["suffix"]


def test_minesweeper_board_rendering_and_turn_limit():
    env = started("game:Minesweeper-v0-easy")
    assert env.step("\\boxed{flag 0 0}")[4]["suffix"] == (
        "Here is the current board layout:\n"
        "    0  1  2  3  4\n"
        " 0  F  .  .  .  . \n"
        + "".join(f" {r}  .  .  .  .  . \n" for r in range(1, 5))
        + "\nEnter your guess."
    )
    results = [env.step("\\boxed{flag 0 0}") for _ in range(24)]
    assert results[-1][2:4] == (True, True) and not any(r[2] for r in results[:-1])


# ---------------------------------------------------------------- Game2048


def test_2048_slides_merge_each_pair_once():
    assert slide_line([2, 2, 2, 2]) == [4, 4, 0, 0]
    assert slide_line([4, 0, 4, 8]) == [8, 8, 0, 0]
    assert slide_line([2, 4, 8, 16]) == [2, 4, 8, 16]
    board = [[2, 0, 0, 2], [0, 4, 0, 0], [0, 4, 0, 0], [8, 0, 0, 8]]
    assert slide(board, "right") == [[0, 0, 0, 4], [0, 0, 0, 4], [0, 0, 0, 4], [0, 0, 0, 16]]
    assert slide(board, "up") == [[2, 8, 0, 2], [8, 0, 0, 8], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert slide(board, "down") == [[0, 0, 0, 0], [0, 0, 0, 0], [2, 0, 0, 2], [8, 8, 0, 8]]


def game(board, target_tile=64, max_turns=50):
    """A reset 2048 env playing `board` from now on, its largest tile taken as the starting one."""
    env = started(Game2048Env(target_tile=target_tile, max_turns=max_turns, board_size=len(board)))
    env.board = [row[:] for row in board]
    env.best_tile = env.first_best_tile = max(map(max, board))
    return env


def test_2048_no_op_move_is_invalid_and_progress_is_log2_of_the_largest_tile():
    env = game([[2, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    observation, reward, terminated, _, _ = env.step("\\boxed{UP}")
    assert observation.endswith("which doesn't change the board state. Try a different direction.")
    assert reward == 0.0 and not terminated
    observation, reward, terminated, _, info = env.step("\\boxed{left}")
    assert observation == "At turn 2, you moved left" and reward == pytest.approx(1 / 5)  # 2 -> 4 of 2 -> 64
    assert info["suffix"].startswith("Current board:\n   4") and sum(map(sum, env.board)) in (6, 8)


def test_2048_reaching_the_target_completes_the_reward_and_wins():
    env = game([[4, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], target_tile=8)
    observation, reward, terminated, truncated, _ = env.step("\\boxed{left}")
    assert observation == "Congratulations! You reached the 8 tile in 1 turns!"
    assert (reward, terminated, truncated) == (1.0, True, False)


def test_2048_game_over_and_turn_limit():
    env = game([[0, 16], [4, 8]])
    assert env.step("\\boxed{left}")[:4] == ("Game over! No more moves possible.", 0.0, True, False)
    env = started(Game2048Env(target_tile=2048, max_turns=2))
    env.step("\\boxed{left}")
    observation, _, terminated, truncated, _ = env.step("\\boxed{right}")
    assert observation == "You have reached the maximum number of turns (2)." and terminated and truncated
    env.reset(seed=0)
    assert env.step("\\boxed{sideways}")[0] == (
        "At turn 1, you did not provide a valid move. Please use \\boxed{direction} format."
    )
