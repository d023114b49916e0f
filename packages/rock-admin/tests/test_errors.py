"""rock-admin's errors form one tree (rock_admin.errors), with names no other package of the project uses."""

from __future__ import annotations

import inspect

import pytest

import rock.exceptions
import rock.sdk.sandbox.errors
import rock_admin.errors
from rock_admin.config import AdminConfig
from rock_admin.errors import AdminConfigError, AdminError


def _classes(module) -> list[type]:
    return [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]


def test_every_error_is_an_admin_error_with_a_name_of_its_own():
    mine = _classes(rock_admin.errors)
    assert len(mine) >= 8 and all(issubclass(c, AdminError) for c in mine)
    sdk = {c.__name__ for m in (rock.exceptions, rock.sdk.sandbox.errors) for c in _classes(m)}
    assert {c.__name__ for c in mine} & sdk == set()  # an admin error is never mistaken for the SDK's


def test_a_bad_setting_is_an_admin_config_error_and_a_value_error(tmp_path):
    with pytest.raises(AdminError) as info:
        AdminConfig.load(None, {}, runtime="nope", state_dir=str(tmp_path))
    assert isinstance(info.value, AdminConfigError) and isinstance(info.value, ValueError)
    assert "runtime" in str(info.value)
