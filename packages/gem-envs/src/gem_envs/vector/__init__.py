"""Vectorised envs: `SyncVectorEnv`, `AsyncVectorEnv` (processes or threads) and `make_vec`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal

from gem_envs.core import Env
from gem_envs.registry import make
from gem_envs.vector.asynchronous import AsyncVectorEnv, WorkerError
from gem_envs.vector.base import AutoresetMode, VectorEnv
from gem_envs.vector.sync import SyncVectorEnv

__all__ = ["AsyncVectorEnv", "AutoresetMode", "SyncVectorEnv", "VectorEnv", "WorkerError", "make_vec"]


def make_vec(
    env_ids: str | Sequence[str],
    num_envs: int | None = None,
    wrappers: Sequence[Callable[[Env], Env]] | None = None,
    vec_kwargs: Sequence[dict[str, Any]] | None = None,
    async_mode: bool = False,
    backend: Literal["process", "thread"] = "process",
    num_workers: int | None = None,
    seed: int = 0,
    autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP,
    **kwargs: Any,
) -> VectorEnv:
    """Build a vector env as GEM does: env i = make(env_ids[i], seed=seed + i, **vec_kwargs[i], **kwargs).

    A single id is repeated `num_envs` times (default: len(vec_kwargs) or 1).
    """
    if isinstance(env_ids, str):
        count = num_envs if num_envs is not None else (len(vec_kwargs) if vec_kwargs else 1)
        env_ids = [env_ids] * count
    env_ids = list(env_ids)
    if vec_kwargs is None:
        vec_kwargs = [{} for _ in env_ids]
    if len(vec_kwargs) != len(env_ids):
        raise ValueError(f"vec_kwargs: got {len(vec_kwargs)} entries for {len(env_ids)} envs")
    env_fns = []
    for i, (env_id, own) in enumerate(zip(env_ids, vec_kwargs, strict=True)):
        env_kwargs = {"seed": seed + i, **kwargs, **own}
        fn: Callable[[], Env] = functools.partial(make, env_id, **env_kwargs)
        if wrappers:
            fn = functools.partial(_wrapped, fn, tuple(wrappers))
        env_fns.append(fn)
    if async_mode:
        return AsyncVectorEnv(
            env_fns, backend=backend, num_workers=num_workers, autoreset_mode=autoreset_mode
        )
    return SyncVectorEnv(env_fns, autoreset_mode=autoreset_mode)


def _wrapped(fn: Callable[[], Env], wrappers: tuple[Callable[[Env], Env], ...]) -> Env:
    env = fn()
    for wrap in wrappers:
        env = wrap(env)
    return env
