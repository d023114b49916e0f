"""GEM envs hosted in the rocklet."""

from __future__ import annotations

import httpx

from rocklet.testing import error_of


def test_env_lifecycle(http: httpx.Client) -> None:
    listed = http.post("/env/list", json={}).json()
    assert "game:Sokoban-v0-easy" in listed["env_id"]
    a = http.post("/env/make", json={"env_id": "game:Sokoban-v0-easy", "sandbox_id": "env-a"}).json()
    assert a == {"sandbox_id": "env-a", "env_id": "game:Sokoban-v0-easy"}
    b = http.post("/env/make", json={"env_id": "game:Sokoban-v0-easy"}).json()
    assert b["sandbox_id"] and b["sandbox_id"] != "env-a"
    assert set(http.post("/env/list", json={}).json()["instances"]) >= {"env-a", b["sandbox_id"]}
    r1 = http.post("/env/reset", json={"sandbox_id": "env-a", "seed": 3}).json()
    r2 = http.post("/env/reset", json={"sandbox_id": b["sandbox_id"], "seed": 3}).json()
    assert isinstance(r1["observation"], str)
    assert r1["observation"] == r2["observation"]
    step = http.post("/env/step", json={"sandbox_id": "env-a", "action": "\\boxed{up}"}).json()
    assert set(step) == {"observation", "reward", "terminated", "truncated", "info"}
    assert isinstance(step["reward"], float)
    assert http.post("/env/close", json={"sandbox_id": "env-a"}).json() == {"sandbox_id": "env-a"}
    assert error_of(http.post("/env/step", json={"sandbox_id": "env-a", "action": "x"}))[
        "class_path"
    ].endswith("EnvDoesNotExistError")
    http.post("/env/close", json={"sandbox_id": b["sandbox_id"]})


def test_env_errors(http: httpx.Client) -> None:
    err = error_of(http.post("/env/make", json={"env_id": "game:NoSuchEnv-v0"}))
    assert "NoSuchEnv" in err["message"]
    assert "builtins.ValueError" in err["bases"]
    assert http.post("/env/step", json={"sandbox_id": "x"}).status_code == 422
