"""rocklet: the in-sandbox agent of ROCK. It serves the SWE-ReX/ROCK runtime API over HTTP (TCP or a Unix
socket): bash sessions on a pty, one-shot commands, background processes, files and GEM envs.

Run it with `rocklet --port 8000` or `rocklet --uds /path/to.sock`; embed it with `rocklet.app.create_app()`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
