"""Workers per role and the clusters that drive them: in-process (`local`) or one Ray actor per rank (`ray`).

Both runtimes expose the same calls; every wait on a Ray worker has a timeout that names the role and
method. Data-parallel train ranks form a torch.distributed group (gloo on CPU, the platform's backend on
devices) and sum gradients, so N ranks compute what one rank would on the whole batch.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import torch

#: Calls one Ray worker serves at once when its strategy takes overlapping calls (one per env-manager thread).
MAX_CONCURRENT_CALLS = 256


class WorkerTimeout(TimeoutError):
    """A worker call did not answer within worker_timeout_s."""


class Worker:
    """One rank of a role: builds its strategy and exposes the calls the pipeline makes."""

    def __init__(
        self,
        role_config,
        kind: str,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        device: str = "cpu",
        num_threads: int | None = None,
    ) -> None:
        from roll.strategies.registry import load_strategy_class

        if num_threads:
            torch.set_num_threads(num_threads)
        self.rank, self.world_size, self.kind = rank, world_size, kind
        cls = load_strategy_class(role_config.strategy_args.strategy_name, critic=kind == "critic")
        if kind in ("train", "critic"):
            self.strategy = cls(role_config, seed=seed, device=device, rank=rank, world_size=world_size)
        else:
            self.strategy = cls(role_config, seed=seed + rank, device=device)

    def init_process_group(self, master_addr: str, master_port: int, backend: str) -> bool:
        import torch.distributed as dist

        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = master_addr, str(master_port)
        dist.init_process_group(backend, rank=self.rank, world_size=self.world_size)
        if hasattr(self.strategy, "on_process_group"):  # builds on the group, syncs ranks itself (DeepSpeed)
            self.strategy.on_process_group()
            return True
        # identical weights on every rank: broadcast rank 0's
        for p in self.strategy.model.parameters():
            dist.broadcast(p.data, src=0)
        return True

    def ping(self) -> int:
        return self.rank

    def call(self, method: str, *args, **kwargs) -> Any:
        target = self if method in ("ping",) else self.strategy
        return getattr(target, method)(*args, **kwargs)

    def tokenizer(self):
        return self.strategy.tokenizer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """All ranks of one role. `execute_all` sends the same call to each rank; `execute_dp` splits a batch."""

    def __init__(
        self,
        role: str,
        role_config,
        kind: str,
        seed: int,
        world_size: int,
        runtime: str,
        devices: list[int] | None = None,
        timeout_s: float = 1800.0,
        platform=None,
        num_threads: int | None = None,
    ) -> None:
        self.role, self.world_size, self.runtime, self.timeout_s = role, world_size, runtime, timeout_s
        self.devices = devices
        if runtime == "local":
            device = f"{platform.device_type}:{devices[0]}" if devices else "cpu"
            self.workers = [Worker(role_config, kind, seed, 0, 1, device)]
            return
        import ray

        from roll.strategies.registry import strategy_spec

        remote_cls = ray.remote(Worker)
        self.workers = []
        per = len(devices) // world_size if devices else 0
        concurrent = strategy_spec(role_config.strategy_args.strategy_name).concurrent_calls
        for rank in range(world_size):
            env_vars = {
                "RAY_AUTH_MODE": "disabled",
                "TOKENIZERS_PARALLELISM": "false",
                "OMP_NUM_THREADS": str(num_threads or 1),
            }
            options: dict[str, Any] = {"num_cpus": 1, "name": f"{role}-{rank}"}
            if concurrent:  # env managers' calls overlap in the worker instead of queueing at the actor
                options["max_concurrency"] = MAX_CONCURRENT_CALLS
            device = "cpu"
            if devices:
                mine = devices[rank * per : (rank + 1) * per]
                env_vars[platform.device_control_env_var] = ",".join(map(str, mine))
                if platform.ray_experimental_noset:
                    env_vars[platform.ray_experimental_noset] = "1"
                options["resources"] = (
                    {platform.ray_device_key: 0.01} if platform.ray_device_key not in ("GPU", "CPU") else {}
                )
                if platform.ray_device_key == "GPU":
                    options["num_gpus"] = 0.01
                device = f"{platform.device_type}:0"
            options["runtime_env"] = {"env_vars": env_vars}
            self.workers.append(
                remote_cls.options(**options).remote(
                    role_config, kind, seed, rank, world_size, device, num_threads
                )
            )
        self._get([w.ping.remote() for w in self.workers], "start")
        if kind in ("train", "critic") and world_size > 1:
            backend = platform.communication_backend if devices else "gloo"
            port = _free_port()
            self._get(
                [w.init_process_group.remote("127.0.0.1", port, backend) for w in self.workers],
                "init_process_group",
            )

    def _get(self, refs, method: str):
        import ray
        from ray.exceptions import GetTimeoutError

        try:
            return ray.get(refs, timeout=self.timeout_s)
        except GetTimeoutError:
            raise WorkerTimeout(
                f"{self.role}.{method}: no answer from {len(refs)} worker(s) within {self.timeout_s}s "
                "(worker_timeout_s); a worker is hung or the machine is overloaded"
            ) from None

    def execute_all(self, method: str, *args, **kwargs) -> list[Any]:
        if self.runtime == "local":
            return [w.call(method, *args, **kwargs) for w in self.workers]
        return self._get([w.call.remote(method, *args, **kwargs) for w in self.workers], method)

    def execute_rank0(self, method: str, *args, **kwargs) -> Any:
        if self.runtime == "local":
            return self.workers[0].call(method, *args, **kwargs)
        return self._get(self.workers[0].call.remote(method, *args, **kwargs), method)

    def execute_dp(self, method: str, batch: dict[str, torch.Tensor], *args, concat: bool = True, **kwargs):
        """Split `batch` into world_size equal chunks (rank order), call, and concat tensor results."""
        n = next(iter(batch.values())).shape[0]
        if n % self.world_size:
            raise ValueError(
                f"{self.role}.{method}: batch of {n} does not split over {self.world_size} ranks"
            )
        size = n // self.world_size
        chunks = [{k: v[r * size : (r + 1) * size] for k, v in batch.items()} for r in range(self.world_size)]
        if self.runtime == "local":
            results = [w.call(method, c, *args, **kwargs) for w, c in zip(self.workers, chunks, strict=True)]
        else:
            results = self._get(
                [
                    w.call.remote(method, c, *args, **kwargs)
                    for w, c in zip(self.workers, chunks, strict=True)
                ],
                method,
            )
        if concat and results and isinstance(results[0], torch.Tensor):
            return torch.cat(results)
        return results

    def tokenizer(self):
        if self.runtime == "local":
            return self.workers[0].tokenizer()
        return self._get(self.workers[0].tokenizer.remote(), "tokenizer")

    def shutdown(self) -> None:
        """Close every rank's strategy (engines stop their own processes), then drop the workers."""
        if self.runtime == "local":
            for w in self.workers:
                w.call("close")
        else:
            import ray

            with contextlib.suppress(Exception):  # a rank that does not answer is killed all the same
                ray.get([w.call.remote("close") for w in self.workers], timeout=60)
            for w in self.workers:
                ray.kill(w)
        self.workers = []
