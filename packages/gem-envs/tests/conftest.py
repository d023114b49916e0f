import pytest

from gem_envs import Env


class CountingEnv(Env):
    """Counts down from `start`; each episode's target is drawn from the env's own RNG."""

    def __init__(self, start: int = 3, seed: int | None = None):
        super().__init__(seed)
        self.start = start

    def _reset(self):
        self.left = self.start
        self.target = self.rng.randint(0, 10**9)
        return f"target {self.target}", {}

    def _step(self, action):
        self.left -= 1
        return str(self.left), 1.0, self.left == 0, False, {}


@pytest.fixture
def counting_env_cls():
    return CountingEnv
