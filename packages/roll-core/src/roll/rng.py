"""This process's random generators (Python's, NumPy's, torch's CPU generator) as one picklable state, so a
resumed run draws what the uninterrupted one would have: the driver's and every train rank's checkpoint carry it."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
