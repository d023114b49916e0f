"""ROCK client SDK: the wire models shared by the SDK, the rocklet and the admin, and an async rocklet client.

`import rock` stays light (pydantic and httpx only). The models live in `rock.actions`, the exceptions that
travel over the wire in `rock.exceptions`, and the low-level rocklet client in `rock.rocklet_client`.
`rock.sdk` is reserved for the `Sandbox` SDK.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
