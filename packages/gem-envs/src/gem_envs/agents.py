"""Reference agents for smoke runs and demos: a random agent and a solver agent."""

from __future__ import annotations

from gem_envs.core import Env


class RandomAgent:
    """Plays the env's own `sample_random_action()`."""

    name = "random"

    def begin(self, env: Env) -> None:
        self.env = env

    def act(self, observation: str) -> str:
        return self.env.sample_random_action()


class SolverAgent:
    """Plays the optimal plan of the env's exact solver; replans every step where moves can slip."""

    name = "solver"

    def begin(self, env: Env) -> None:
        if not callable(getattr(env, "solution", None)):
            raise TypeError(f"{env.env_id}: env has no solver (no `solution()` method)")
        self.env = env
        self.plan: list[str] = []

    def act(self, observation: str) -> str:
        if self.env.stochastic_transitions or not self.plan:
            self.plan = list(self.env.solution())
        if not self.plan:
            raise RuntimeError(f"{self.env.env_id}: the solver found no plan from the current state")
        return self.plan.pop(0)


AGENTS = {"random": RandomAgent, "solver": SolverAgent}
