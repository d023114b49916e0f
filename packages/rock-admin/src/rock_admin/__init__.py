"""ROCK admin server: sandboxes on demand on one machine, ROCK's HTTP API and the GEM API.

Layout: `api/` (Litestar routes), `service/` (lifecycle, GEM hosting), `runtimes/` (interface + `process`),
`store/` (interface + SQLite), `images/` (local image store), `config.py`, `cli.py`.
"""

__version__ = "0.1.0"
