"""ROLL-compatible agentic RL trainer core."""

__version__ = "0.1.0"
