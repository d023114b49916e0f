"""`AdminConfig.load`: flags > `ROCK_ADMIN_*` > the YAML file > defaults, and each bad value named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rock_admin.config import AdminConfig, AdminConfigError


def _yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "admin.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_need_no_file(tmp_path: Path) -> None:
    config = AdminConfig.load(env={}, state_dir=str(tmp_path))
    assert (config.host, config.port, config.runtime, config.api_keys) == ("127.0.0.1", 8080, "process", [])
    assert config.token_key_file == str(tmp_path / "rocklet-token.key")


def test_flags_beat_env_beat_yaml(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "port: 9001\nhost: 0.0.0.0\nlog_level: debug\ngem_pool_size: 3\n")
    env = {"ROCK_ADMIN_PORT": "9002", "ROCK_ADMIN_HOST": "10.0.0.1", "ROCK_ADMIN_CONFIG": path}
    config = AdminConfig.load(None, env, port=9003, host=None)
    assert (config.port, config.host, config.log_level, config.gem_pool_size) == (
        9003,
        "10.0.0.1",
        "debug",
        3,
    )
    assert AdminConfig.load(path, {}).port == 9001


def test_env_values_are_typed(tmp_path: Path) -> None:
    env = {
        "ROCK_ADMIN_API_KEYS": "a,b,",
        "ROCK_ADMIN_STOP_ON_EXIT": "true",
        "ROCK_ADMIN_AUTO_STOP_INTERVAL": "0.2",
        "ROCK_ADMIN_PIDS_MAX": "64",
        "ROCK_ADMIN_STATE_DIR": str(tmp_path),
        "ROCK_ADMIN_WRITE_URL": "http://127.0.0.1:8080/",
    }
    config = AdminConfig.load(env=env)
    assert config.api_keys == ["a", "b"] and config.stop_on_exit is True
    assert (config.auto_stop_interval, config.pids_max, config.state_dir) == (0.2, 64, str(tmp_path))
    assert config.write_url == "http://127.0.0.1:8080"
    assert AdminConfig.load(env={"ROCK_ADMIN_STOP_ON_EXIT": "0"}).stop_on_exit is False


def test_an_unknown_yaml_key_is_named(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "prot: 9001\n")
    with pytest.raises(
        AdminConfigError, match=rf"^{re.escape(path)}: unknown setting 'prot' \(known: .*port"
    ):
        AdminConfig.load(path, {})


def test_a_yaml_file_that_is_not_a_mapping_or_missing_is_an_error(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "- port\n")
    with pytest.raises(AdminConfigError, match="expected a mapping of settings"):
        AdminConfig.load(path, {})
    with pytest.raises(FileNotFoundError):
        AdminConfig.load(str(tmp_path / "none.yaml"), {})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": "eighty"}, "port: Input should be a valid integer"),
        ({"runtime": "ray"}, "runtime: 'ray' is a scheduler; use scheduler: ray"),
        ({"runtime": "kubernetes"}, "runtime: unknown runtime 'kubernetes' (available: process, docker)"),
        ({"scheduler": "slurm"}, "scheduler: expected local or ray, got 'slurm'"),
        ({"isolation": "x"}, "isolation: expected auto, namespaces or none, got 'x'"),
        ({"max_memory": "lots"}, "max_memory: expected a size like '8g', '512m' or a number of bytes"),
        ({"health_timeout": -1}, "health_timeout: must be a positive number of seconds, got -1"),
        ({"rocklet_call_timeout": 0}, "rocklet_call_timeout: must be a positive number of seconds"),
        ({"userns_base": 0}, "userns_base: expected 1 .. 2**31 - 65536, got 0"),
        ({"pids_reserve": -1}, "pids_reserve: must be >= 0, got -1"),
        ({"docker_network": "host"}, "docker_network: expected none or bridge, got 'host'"),
    ],
)
def test_a_bad_value_names_the_field_and_the_problem(
    settings: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(AdminConfigError) as info:
        AdminConfig.load(env={}, state_dir=str(tmp_path), **settings)
    assert str(info.value).startswith(message), str(info.value)


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    env = {"ROCK_ADMIN_GEM_MODE": "many", "ROCK_ADMIN_PIDS_MAX": "2"}
    with pytest.raises(AdminConfigError, match=r"^pids_max: .*; gem_mode: expected sandbox or pooled"):
        AdminConfig.load(env=env, state_dir=str(tmp_path))
