"""ROCK client SDK: the wire models shared by the SDK, the rocklet and the admin, and an async rocklet client.

`import rock` stays light (pydantic and httpx only). The models live in `rock.actions`, the exceptions that
travel over the wire in `rock.exceptions`, and the low-level rocklet client in `rock.rocklet_client`.
The user SDK is `rock.sdk` (`rock.sdk.sandbox.client.Sandbox`) and `rock.make(env_id)` for GEM envs.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def make(env_id: str, **kwargs: Any) -> Any:
    """A GEM env hosted by the ROCK admin at `$ROCK_BASE_URL` (upstream's synchronous `RockEnv`)."""
    from rock.sdk.envs import make as _make

    return _make(env_id, **kwargs)


__all__ = ["__version__", "make"]
