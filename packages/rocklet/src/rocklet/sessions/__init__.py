"""Bash sessions on a pty: one interactive bash per session name, commands ended by a unique prompt marker."""

from rocklet.sessions.bash import BashSession
from rocklet.sessions.manager import SessionManager

__all__ = ["BashSession", "SessionManager"]
