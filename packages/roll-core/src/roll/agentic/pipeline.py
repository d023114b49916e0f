"""The agentic pipeline: rollout → rewards and advantages (`advantage_stage`, on the driver) → train → weight sync.

Validation every `eval_steps`, metrics with ROLL's names to stdout/JSONL/TensorBoard, checkpoints every
`save_steps` (model, optimizer, scheduler, RNG, step, scheduler state) and `resume_from_checkpoint`.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from roll.agentic.advantage_stage import advantage_stage
from roll.agentic.async_rollout import AsyncRollout
from roll.agentic.checkpoints import PIPELINE_STATE, CheckpointDir
from roll.agentic.env_manager import ChatFormatter, Trajectory, TrajEnvManager
from roll.agentic.scheduler import RolloutScheduler
from roll.agentic.step_metrics import stats, trajectory_metrics
from roll.agentic.tracking import Tracker
from roll.algorithms import make_kl_controller, masked_mean
from roll.config.schema import AgenticConfig
from roll.config.validate import world_size_of
from roll.distributed.cluster import Cluster
from roll.distributed.placement import parse_device_mapping
from roll.rng import rng_state, set_rng_state
from roll.strategies.base import LossConfig
from roll.strategies.registry import strategy_spec


def collate(trajs: list[Trajectory], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad trajectories to the batch's longest; response-aligned tensors have width L−1."""
    L = max(len(t.input_ids) for t in trajs)
    B = len(trajs)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    model_tok = torch.zeros((B, L), dtype=torch.float32)
    infer_lp = torch.zeros((B, L), dtype=torch.float32)
    for i, t in enumerate(trajs):
        n = len(t.input_ids)
        ids[i, :n] = torch.tensor(t.input_ids)
        attn[i, :n] = 1
        model_tok[i, :n] = torch.tensor(t.model_token, dtype=torch.float32)
        infer_lp[i, :n] = torch.tensor(t.infer_logprobs, dtype=torch.float32)
    return {
        "input_ids": ids,
        "attention_mask": attn,
        "response_mask": model_tok[:, 1:].contiguous(),
        "infer_logprobs": infer_lp[:, 1:].contiguous(),
    }


def manager_class(cfg: AgenticConfig, mgr) -> type[TrajEnvManager]:
    """AgentNativeEnvManager for agent_native tags (validation keeps them apart from others), else TrajEnvManager."""
    from roll.agentic.agent_native import AgentNativeEnvManager, is_agent_native

    if any(is_agent_native(cfg.custom_envs[t]) for t in mgr.tags):
        return AgentNativeEnvManager
    return TrajEnvManager


class AgenticPipeline:
    """Builds the role clusters and env schedulers from a validated, finalized config and runs the loop."""

    def __init__(self, cfg: AgenticConfig, stdout: bool = True) -> None:
        from roll.platforms import select_platform

        self.cfg = cfg
        self.platform = select_platform(cfg.platform)
        self.stdout = stdout
        self._ray_dir: str | None = None
        self.runtime = cfg.runtime
        use_critic = cfg.adv_estimator == "gae"
        if use_critic and cfg.critic is None:
            raise ValueError(
                "adv_estimator 'gae' needs a critic role: run roll.config.finalize on the config"
            )
        roles = (
            [cfg.actor_train, cfg.actor_infer]
            + ([cfg.reference] if cfg.enable_reference and cfg.reference else [])
            + ([cfg.critic] if use_critic else [])
        )
        if self.runtime == "auto":
            self.runtime = "ray" if any(world_size_of(r) > 1 for r in roles) else "local"
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % (2**32))
        torch.manual_seed(cfg.seed)
        if self.runtime == "ray":
            self._init_ray(sum(world_size_of(r) for r in roles))
        threads = max(1, torch.get_num_threads() // max(1, len(roles))) if self.runtime == "ray" else None
        mk = lambda name, role, kind: Cluster(  # noqa: E731
            name,
            role,
            kind,
            cfg.seed,
            world_size_of(role),
            self.runtime,
            parse_device_mapping(role.device_mapping),
            cfg.worker_timeout_s,
            self.platform,
            threads,
        )
        self.actor_train = mk("actor_train", cfg.actor_train, "train")
        self.actor_infer = mk("actor_infer", cfg.actor_infer, "infer")
        self.reference = mk("reference", cfg.reference, "infer") if cfg.enable_reference else None
        self.critic = mk("critic", cfg.critic, "critic") if use_critic else None
        from transformers import AutoTokenizer

        from roll.models.registry import resolve_pretrain

        self.tokenizer = AutoTokenizer.from_pretrained(
            resolve_pretrain(cfg.actor_infer.model_args.model_name_or_path)
        )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.formatter = ChatFormatter(self.tokenizer, cfg.skip_mock_system_prompt)
        self.schedulers: dict[str, RolloutScheduler] = {}
        # generation and weight sync exclude each other; policy_version = train steps in the infer weights
        self.gen_lock = threading.Lock()
        self.policy_version = 0
        self.rollout: AsyncRollout | None = None
        self.managers: list[TrajEnvManager] = []
        for mode, mgr in (("train", cfg.train_env_manager), ("val", cfg.val_env_manager)):
            gen_args = mgr.generating_args
            manager = manager_class(cfg, mgr)(
                self.formatter,
                cfg.sequence_length,
                self._generate_fn(gen_args),
                gen_args.max_new_tokens,
                mgr.env_timeout_s,
                max_workers=min(16, mgr.num_env_groups * mgr.group_size),
            )
            self.managers.append(manager)
            self.schedulers[mode] = RolloutScheduler(
                cfg, mgr, mode, manager, cfg.seed, self.gen_lock, lambda: self.policy_version
            )
        # optimizer steps in the run: the LR schedule's length
        dp = self.actor_train.world_size
        ta = cfg.actor_train.training_args
        per_rank = cfg.rollout_batch_size // dp
        mini = min(per_rank, ta.per_device_train_batch_size * ta.gradient_accumulation_steps)
        self.mini_batches = math.ceil(per_rank / mini)
        self.actor_train.execute_all("set_total_steps", cfg.max_steps * self.mini_batches * cfg.ppo_epochs)
        if self.critic is not None:
            cta = cfg.critic.training_args
            c_rank = cfg.rollout_batch_size // self.critic.world_size
            c_mini = min(c_rank, cta.per_device_train_batch_size * cta.gradient_accumulation_steps)
            self.critic.execute_all(
                "set_total_steps", cfg.max_steps * math.ceil(c_rank / c_mini) * cfg.ppo_epochs
            )
        recompute = cfg.enable_old_logprobs_recompute
        if recompute is None:
            recompute = self.mini_batches * cfg.ppo_epochs > 1 or cfg.enable_reference
        self.recompute_old = bool(recompute) and not cfg.force_disable_old_logprobs_recompute
        self.kl_ctrl = make_kl_controller(cfg.init_kl_coef, cfg.target_kl, cfg.kl_horizon)
        self.loss_cfg = LossConfig(
            pg_clip_low=cfg.pg_clip_low if cfg.use_pg_clip_range else cfg.pg_clip,
            pg_clip_high=cfg.pg_clip_high if cfg.use_pg_clip_range else cfg.pg_clip,
            dual_clip_loss=cfg.dual_clip_loss,
            pg_clip=cfg.pg_clip,
            loss_agg_mode=cfg.loss_agg_mode,
            use_kl_loss=cfg.use_kl_loss,
            kl_loss_coef=cfg.kl_loss_coef,
            entropy_loss_coef=cfg.entropy_loss_coef,
            ppo_epochs=cfg.ppo_epochs,
            use_cached_old_log_probs=self.recompute_old,
            value_clip=cfg.value_clip,
        )
        self.start_step = 0
        self.checkpoints = CheckpointDir(
            Path(cfg.checkpoint_config.output_dir or Path(cfg.output_dir) / "checkpoints"),
            cfg.checkpoint_config.max_ckpt_to_keep,
        )
        resume_path = self.checkpoints.resume_path(cfg.resume_from_checkpoint)
        self.tracker = Tracker(
            cfg.track_with,
            cfg.logging_dir,
            cfg.tracker_kwargs,
            cfg.exp_name,
            stdout,
            resume=resume_path is not None,
        )
        if resume_path is not None:
            self._load_checkpoint(resume_path)
        if cfg.async_generation_ratio > 0:
            self.rollout = self.async_rollout(int(cfg.async_generation_ratio))
        self._tps_window: list[tuple[float, float]] = []

    # ------------------------------------------------------------------------------------------- setup
    def async_rollout(self, ratio: int) -> AsyncRollout:
        """A background producer of training batches at most `ratio` policy versions stale."""
        return AsyncRollout(
            self.schedulers["train"],
            self.cfg.rollout_batch_size,
            ratio,
            self.start_step,
            self.cfg.max_steps,
            lambda: self.policy_version,
            self.cfg.rollout_timeout_s,
        )

    def _init_ray(self, n_workers: int) -> None:
        import os

        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "num_cpus": max(4, n_workers + 1),
            "log_to_driver": False,
        }
        kwargs.update(self.cfg.ray_init_kwargs or {})
        if "_temp_dir" not in kwargs:
            self._ray_dir = tempfile.mkdtemp(prefix="roll-ray-")
            kwargs["_temp_dir"] = self._ray_dir
        ray.init(**kwargs)

    def _generate_fn(self, gen_args):
        def generate(prompts: list[list[int]], budgets: list[int]):
            n = self.actor_infer.world_size
            if n == 1:
                return self.actor_infer.execute_rank0("generate", prompts, budgets, gen_args)
            # split rows over the inference ranks (contiguous chunks), gather in order
            size = math.ceil(len(prompts) / n)
            parts = [(prompts[i : i + size], budgets[i : i + size]) for i in range(0, len(prompts), size)]

            refs = [
                w.call.remote("generate", p, b, gen_args)
                for w, (p, b) in zip(self.actor_infer.workers, parts, strict=False)
            ]
            return [o for chunk in self.actor_infer._get(refs, "generate") for o in chunk]

        return generate

    # ------------------------------------------------------------------------------------------- loop
    def run(self, stop_at: int | None = None) -> list[dict[str, float]]:
        """Train from start_step to max_steps (or until `stop_at` steps are done); returns the metrics."""
        from tqdm.auto import tqdm

        history: list[dict[str, float]] = []
        end = self.cfg.max_steps if stop_at is None else min(stop_at, self.cfg.max_steps)
        bar = tqdm(
            range(self.start_step, end),
            desc=self.cfg.exp_name,
            disable=not self.cfg.progress_bar,
            initial=self.start_step,
            total=end,
        )
        for step in bar:
            metrics = self.step(step)
            history.append(metrics)
            bar.set_postfix({"score": f"{metrics.get('rollout/score/mean', float('nan')):.3f}"})
        bar.close()
        self.write_curves()
        return history

    def write_curves(self) -> Path | None:
        """logging_dir/curves.png from metrics.jsonl, when matplotlib is installed."""
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None or not self.tracker.jsonl_path.exists():
            return None
        from roll.agentic.plot import plot_metrics

        return plot_metrics(self.tracker.jsonl_path, Path(self.cfg.logging_dir) / "curves.png")

    def validate(self) -> dict[str, float]:
        t0 = time.perf_counter()
        trajs, _ = self.schedulers["val"].get_batch(self.cfg.val_batch_size, fresh=True)
        out = trajectory_metrics(trajs, prefix="val")
        out["time/step_val"] = time.perf_counter() - t0
        return out

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        t_start = time.perf_counter()
        metrics: dict[str, float] = {}
        if step % cfg.eval_steps == 0:
            metrics.update(self.validate())
        t0 = time.perf_counter()
        if self.rollout is not None:
            trajs, sched_metrics = self.rollout.get(step)
        else:
            trajs, sched_metrics = self.schedulers["train"].get_batch(cfg.rollout_batch_size)
        metrics["time/step_rollout"] = time.perf_counter() - t0
        metrics.update(sched_metrics)
        stats("rollout/staleness", [step - t.policy_version for t in trajs], metrics)
        metrics.update(trajectory_metrics(trajs))
        batch = collate(trajs, self.tokenizer.pad_token_id)
        mask = batch["response_mask"]
        t0 = time.perf_counter()
        model_inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self.reference is not None:
            batch["ref_log_probs"] = self.reference.execute_dp("compute_log_probs", model_inputs) * mask
            metrics["critic/ref_log_prob/mean"] = float(masked_mean(batch["ref_log_probs"], mask))
        metrics["time/step_ref_log_probs_values_reward"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if self.recompute_old:
            batch["old_log_probs"] = self.actor_train.execute_dp("compute_log_probs", model_inputs) * mask
            metrics["critic/old_log_prob/mean"] = float(masked_mean(batch["old_log_probs"], mask))
        values = None
        if self.critic is not None:
            values = self.critic.execute_dp("compute_values", model_inputs) * mask
            batch["values"] = values
        metrics["time/step_old_log_probs_values"] = time.perf_counter() - t0

        # ---- rewards and advantages on the driver
        t0 = time.perf_counter()
        kl_ctrl = self.kl_ctrl if self.reference is not None else None
        metrics.update(advantage_stage(batch, trajs, cfg, values, kl_ctrl))
        stats("tokens/response_length", mask.sum(1), metrics)
        stats("tokens/prompt_length", [t.prompt_length for t in trajs], metrics)
        stats("tokens/non_prompt_length", [len(t.input_ids) - t.prompt_length for t in trajs], metrics)
        metrics["time/step_adv"] = time.perf_counter() - t0

        # ---- train, then sync weights to the inference workers
        t0 = time.perf_counter()
        train_batch = {
            k: v
            for k, v in batch.items()
            if k
            in (
                "input_ids",
                "attention_mask",
                "response_mask",
                "advantages",
                "old_log_probs",
                "ref_log_probs",
            )
        }
        if self.critic is not None:
            critic_batch = {
                k: batch[k] for k in ("input_ids", "attention_mask", "response_mask", "values", "returns")
            }
            results = self.critic.execute_dp("train_step", critic_batch, self.loss_cfg, concat=False)
            for k in results[0]:
                metrics[k] = sum(r[k] for r in results) / len(results)
        if step >= cfg.critic_warmup:
            results = self.actor_train.execute_dp("train_step", train_batch, self.loss_cfg, concat=False)
            for k in results[0]:
                metrics[k] = sum(r[k] for r in results) / len(results)
            metrics["critic/entropy/mean"] = metrics.get("actor/entropy", 0.0)
        metrics["time/step_train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if (step + 1) % max(1, cfg.actor_train.model_update_frequency) == 0:
            self.sync_weights(step + 1)
        metrics["time/step_model_update"] = time.perf_counter() - t0
        total = time.perf_counter() - t_start
        metrics["time/step_total"] = total
        n_tokens = float(batch["attention_mask"].sum())
        self._tps_window = ([*self._tps_window, (n_tokens, total)])[-5:]
        metrics["system/tps"] = sum(n for n, _ in self._tps_window) / max(
            1e-9, sum(t for _, t in self._tps_window)
        )
        metrics["system/samples"] = float(len(trajs) * (step + 1))
        self.tracker.log(metrics, step)
        if step % cfg.logging_steps == 0:
            self._log_samples(trajs[:2], step)
        if (step > 0 and step % cfg.save_steps == 0) or step == cfg.max_steps - 1:
            self.save_checkpoint(step)
        return metrics

    def sync_weights(self, version: int) -> None:
        """actor_train → actor_infer; `version` = train steps in these weights. Waits for in-flight generation."""
        if strategy_spec(self.cfg.actor_train.strategy_args.strategy_name).collective_state_dict:
            state = self.actor_train.execute_all("state_dict")[0]  # ZeRO-3: all ranks gather, rank 0 keeps
        else:
            state = self.actor_train.execute_rank0("state_dict")
        with self.gen_lock:
            self.actor_infer.execute_all("load_state_dict", state)
            self.policy_version = version
        if self.rollout is not None:
            self.rollout.notify()

    def _log_samples(self, trajs: list[Trajectory], step: int) -> None:
        import json

        path = Path(self.cfg.logging_dir) / "samples.jsonl"
        with path.open("a") as f:
            for t in trajs:
                f.write(
                    json.dumps(
                        {
                            "step": step,
                            "traj_id": t.traj_id,
                            "policy_version": t.policy_version,
                            "score": t.episode_score,
                            "turns": t.texts,
                        }
                    )
                    + "\n"
                )

    # ------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, step: int) -> Path:
        """Every training role's strategy state, then the driver's: step, env schedulers, KL coefficient and
        the random generators of the infer workers and of this process."""
        with self.checkpoints.writing(step) as tmp:
            self.actor_train.execute_all("save_checkpoint", str(tmp / "actor_train"))
            if self.critic is not None:
                self.critic.execute_all("save_checkpoint", str(tmp / "critic"))
            with self.gen_lock:
                infer_rng = (
                    [w.call("get_rng_state") for w in self.actor_infer.workers]
                    if self.actor_infer.runtime == "local"
                    else self.actor_infer.execute_all("get_rng_state")
                )
            schedulers = {k: s.state_dict() for k, s in self.schedulers.items()}
            if self.rollout is not None:  # batches generated ahead are regenerated after a resume
                schedulers["train"] = self.rollout.scheduler_state(step + 1)
            state = {
                "step": step,
                "schedulers": schedulers,
                "kl_coef": self.kl_ctrl.value,
                "infer_rng": infer_rng,
                "rng": rng_state(),
            }
            torch.save(state, tmp / PIPELINE_STATE)
        return self.checkpoints.root / f"checkpoint-{step}"

    def _load_checkpoint(self, path: Path) -> None:
        self.actor_train.execute_all("load_checkpoint", str(path / "actor_train"))
        if self.critic is not None:
            if not (path / "critic").is_dir():
                raise FileNotFoundError(f"{path} has no critic state; it was not saved by a gae run")
            self.critic.execute_all("load_checkpoint", str(path / "critic"))
        state = torch.load(path / PIPELINE_STATE, weights_only=False)
        for k, s in state["schedulers"].items():
            self.schedulers[k].load_state_dict(s)
        self.kl_ctrl.value = state["kl_coef"]
        self.sync_weights(state["step"] + 1)
        for w, rng in zip(self.actor_infer.workers, state["infer_rng"], strict=False):
            if self.actor_infer.runtime == "local":
                w.call("set_rng_state", rng)
            else:
                self.actor_infer._get(w.call.remote("set_rng_state", rng), "set_rng_state")
        set_rng_state(state["rng"])
        self.start_step = state["step"] + 1
        self.tracker.truncate_after(state["step"])

    def close(self) -> None:
        if self.rollout is not None:
            self.rollout.close(self.cfg.rollout_timeout_s)
        for m in self.managers:
            m.close()
        for scheduler in self.schedulers.values():
            scheduler.close()
        self.tracker.close()
        for c in (self.actor_train, self.actor_infer, self.reference, self.critic):
            if c is not None:
                c.shutdown()
        if self.runtime == "ray":
            import ray

            if ray.is_initialized():
                ray.shutdown()
            if self._ray_dir:
                shutil.rmtree(self._ray_dir, ignore_errors=True)
