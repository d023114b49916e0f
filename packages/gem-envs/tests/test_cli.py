from gem_envs.cli import main


def test_demo_prints_a_table_where_the_solver_always_wins(capsys):
    assert main(["demo", "--episodes", "20", "--env", "game:Sokoban-v0-easy", "--env", "SimpleSokoban"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["env", "agent", "episodes", "success"]
    rows = {(line.split()[0], line.split()[1]): line.split() for line in lines[2:]}
    assert set(rows) == {
        (e, a) for e in ("game:Sokoban-v0-easy", "SimpleSokoban") for a in ("solver", "random")
    }
    for env_id in ("game:Sokoban-v0-easy", "SimpleSokoban"):
        assert rows[(env_id, "solver")][3] == "100.0%"
        assert rows[(env_id, "solver")][2] == "20"


def test_list_filters_by_prefix(capsys):
    assert main(["list", "game:Sokoban"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [
        "game:Sokoban-v0-easy",
        "game:Sokoban-v0-hard",
        "game:Sokoban-v0-random",
    ]


def test_bad_episode_count_is_rejected(capsys):
    assert main(["demo", "--episodes", "0"]) == 2
    assert "--episodes" in capsys.readouterr().err
