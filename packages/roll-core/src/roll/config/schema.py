"""The configuration as dataclasses, with ROLL's key names and defaults (`reference/roll.md` §2).

Every key a YAML file may carry is a field here; `roll.config.loader` rejects anything else with its path.
Fields typed `dict` are free-form (strategy configs, env kwargs); everything else is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict

from roll.config import rules
from roll.config.rules import above, at_least, choice, one_of, rule, unset

FA2_NAMES = {"fa2", "flash_attention_2", "flash_attn"}
# `custom_envs.<Tag>.env_manager_cls` values that select roll.agentic.agent_native.AgentNativeEnvManager
AGENT_NATIVE_MANAGERS = {
    "agent_native",
    "AgentNativeEnvManager",
    "roll.agentic.agent_native.AgentNativeEnvManager",
}
TRAJ_MANAGERS = {
    None,
    "roll.agentic.env_manager.TrajEnvManager",
    "roll.pipeline.agentic.env_manager.traj_env_manager.TrajEnvManager",
    "TrajEnvManager",
    *AGENT_NATIVE_MANAGERS,  # roll.agentic.agent_native: an agent program in a sandbox per episode
}


@dataclass
class ModelArgs:
    """How a role loads its model (`<role>.model_args`)."""

    model_name_or_path: str | None = None  # defaults to the top-level `pretrain`
    # eager | sdpa | fa2 / flash_attention_2 (CUDA + flash-attn only)
    attn_implementation: str | None = field(
        default=None,
        metadata=rule(
            choice({None, "eager", "sdpa", *FA2_NAMES}, "unknown value {v}; use eager, sdpa or fa2")
        ),
    )
    dtype: str = field(
        default="fp32",
        metadata=rule(
            choice(
                {"fp32", "bf16", "fp16", "float32", "bfloat16", "float16"},
                "unknown dtype {v}; use fp32, bf16 or fp16",
            )
        ),
    )
    disable_gradient_checkpointing: bool = True
    model_type: str | None = None  # None = causal LM; "trl" = value head (critic)
    lora_target: str | None = field(
        default=None, metadata=rule(unset("LoRA is not implemented in roll-core 0.1; remove lora_target"))
    )
    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    trust_remote_code: bool = False
    num_labels: int | None = None
    freeze_module_prefix: str | None = None
    gguf_file: str | None = None


@dataclass
class TrainingArgs:
    """Optimizer and schedule of a training role (`<role>.training_args`), HF TrainingArguments names."""

    learning_rate: float = 1e-6
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    # constant | linear | cosine (all with warmup)
    lr_scheduler_type: str = field(default="constant", metadata=rule(rules.lr_scheduler))
    max_steps: int | None = None  # pushed from the top-level `max_steps`
    max_grad_norm: float | None = None  # defaults to the top-level `max_grad_norm`
    num_train_epochs: int = 1
    seed: int | None = None
    optim: str = "adamw_torch"
    output_dir: str | None = None


@dataclass
class DataArgs:
    """`<role>.data_args`: `template` names the chat template family (the tokenizer's own template is used)."""

    template: str | None = None
    file_name: Any = None
    preprocessing_num_workers: int | None = None


@dataclass
class GeneratingArgs:
    """Sampling parameters of an inference role (`<role>.generating_args`)."""

    max_new_tokens: int = 128
    top_p: float = 1.0
    top_k: int = 0  # 0 or -1 = off
    num_beams: int = field(default=1, metadata=rule(choice({1}, "beam search is not implemented; set 1")))
    temperature: float = 1.0
    do_sample: bool = True
    num_return_sequences: int = 1
    repetition_penalty: float = field(
        default=1.0,
        metadata=rule(choice({1.0}, "not implemented in roll-core 0.1; set 1.0")),
    )
    stop_strings: list[str] | None = field(
        default=None, metadata=rule(unset("not implemented in roll-core 0.1; generation stops at EOS"))
    )


@dataclass
class StrategyArgs:
    """`strategy_name` picks the backend from the registry; `strategy_config` is passed to it as is."""

    strategy_name: str = "hf_infer"
    strategy_config: dict | None = None


@dataclass
class WorkerConfig:
    """One role: its model, strategy and placement (`device_mapping` list of global devices, or None = CPU)."""

    name: str | None = None
    worker_cls: str | None = None
    model_args: ModelArgs = field(default_factory=ModelArgs)
    training_args: TrainingArgs = field(default_factory=TrainingArgs)
    data_args: DataArgs = field(default_factory=DataArgs)
    generating_args: GeneratingArgs | None = None
    strategy_args: StrategyArgs = field(default_factory=StrategyArgs)
    device_mapping: Any = None  # list[int] | "list(range(a,b))" | None; parsed by roll.distributed.placement
    world_size: int | None = (
        None  # CPU workers: explicit; device workers: len(device_mapping) // num_gpus_per_worker
    )
    num_gpus_per_worker: int = 1
    infer_batch_size: int = 16
    model_update_frequency: int = 1
    system_envs: dict | None = None
    pg_variant: str | None = None
    use_dynamic_batching_in_train: bool = False
    use_dynamic_batching_in_infer: bool = False
    use_sequence_packing: bool = False
    offload_nccl: bool = False
    max_concurrency: int | None = None


@dataclass
class EnvManagerConfig(WorkerConfig):
    """`train_env_manager` / `val_env_manager`: env groups, group size (same seed within a group), tags."""

    num_env_groups: int = field(default=128, metadata=rule(at_least(1)))
    group_size: int = field(default=1, metadata=rule(at_least(1)))
    group_size_redundancy: int = field(default=0, metadata=rule(at_least(0)))
    tags: list[str] = field(
        default_factory=list,
        metadata=rule(lambda v: None if v else "no env tags: list keys of custom_envs"),
    )
    num_groups_partition: list[int] | None = None
    max_env_num_per_worker: int = 0
    max_traj_per_env: int = -1
    format_penalty: float | None = (
        None  # as in ROLL: declared, the effective one is custom_envs.<Tag>.env_config
    )
    llm_proxy: dict | None = field(default=None, metadata=rule(rules.llm_proxy))
    group_filter_cls: str | None = field(default=None, metadata=rule(rules.group_filter))
    env_timeout_s: float = 600.0  # our addition: an env reset/step slower than this is a failed episode
    max_env_retries: int = 1  # our addition: failed episodes are retried this often, then dropped (metric)
    # our addition: envs replaced (new sandboxes) per batch before the batch fails naming the cause; -1: a quarter of the envs, at least 2
    max_env_replacements: int = -1


@dataclass
class AgentNativeConfig:
    """`custom_envs.<Tag>.agent` (our addition) for `env_manager_cls: agent_native`: a real agent program runs
    in a ROCK sandbox per episode, its LLM calls are answered by the policy, a task verifier gives the reward."""

    tasks: list[str] | None = None  # task names (default: every task of task_file)
    task_file: str | None = None  # JSON/YAML list of tasks (default: roll's shipped terminal tasks)
    # the agent's command line (default: rock-sdk's Python bash agent); placeholders {python} {task_file}
    # {max_turns} {workdir} {rock_agents_dir}
    command: str | None = field(default=None, metadata=rule(rules.agent_command))
    # model calls per episode; the agent is stopped at the next one
    max_turns: int = field(default=8, metadata=rule(above(0)))
    # wall time of one agent run, from its start to its exit
    agent_timeout_s: float = field(default=300.0, metadata=rule(above(0)))
    setup_timeout_s: float = field(default=60.0, metadata=rule(above(0)))
    verifier_timeout_s: float = field(default=60.0, metadata=rule(above(0)))
    # a parked agent request unanswered this long gets HTTP 504
    request_timeout_s: float = field(default=300.0, metadata=rule(above(0)))
    # one long-poll for the agent's next request
    poll_timeout_s: float = field(default=10.0, metadata=rule(above(0)))
    # generation waits this long for other envs' requests to batch with
    batch_window_s: float = field(default=0.5, metadata=rule(at_least(0)))
    # ROCK admin (default $ROCK_BASE_URL or http://localhost:8080)
    base_url: str | None = field(default=None, metadata=rule(rules.admin_url))
    image: str = "python:3.11"
    memory: str = "2g"
    cpus: float = field(default=1.0, metadata=rule(above(0)))
    startup_timeout_s: float = field(default=180.0, metadata=rule(above(0)))
    auto_clear_seconds: int = 3600
    python: str | None = None  # interpreter for the agent and $PYTHON (default: the trainer's, which
    # a process-runtime sandbox sees at the same path)
    model_service_port: int = field(default=0, metadata=rule(rules.port))  # 0: any free port in the sandbox
    env: dict | None = None  # extra environment for the agent process


@dataclass
class CustomEnv:
    """`custom_envs.<Tag>`: a gem_envs id plus the manager settings of that tag (ROLL's catalogue keys)."""

    env_type: str = ""
    env_config: dict = field(default_factory=dict)
    max_steps: int = field(default=10, metadata=rule(at_least(1)))
    max_tokens_per_step: int = field(default=128, metadata=rule(at_least(1)))
    env_manager_cls: str | None = field(
        default=None,
        metadata=rule(
            choice(
                TRAJ_MANAGERS,
                "{v} is not implemented in roll-core 0.1; use roll.agentic.env_manager.TrajEnvManager",
            )
        ),
    )
    agent_system_template: str | None = None
    agent_template: str | None = None
    use_thread_lock: bool = False
    max_env_step_concurrent: int | None = None
    history_length: int | None = None
    tool_wrapper: dict | None = field(
        default=None, metadata=rule(unset("tool wrappers are not implemented in roll-core 0.1"))
    )
    agent_runner_cls: str | None = None
    metrics_agg_mode: dict | None = None
    rock: dict | None = None  # our addition: {base_url: ...} hosts the env through a ROCK admin
    agent: AgentNativeConfig | None = None  # our addition: settings of env_manager_cls agent_native


@dataclass
class RewardNormalization:
    # batch | traj_group_id | tags | any non-tensor key
    grouping: str = field(default="batch", metadata=rule(rules.grouping))
    method: str = field(
        default="identity", metadata=rule(one_of({"identity", "mean", "mean_std", "asym_clip"}, "method"))
    )


@dataclass
class CheckpointConfig:
    type: str = field(
        default="file_system",
        metadata=rule(choice({"file_system"}, "only 'file_system' is supported, got {v}")),
    )
    output_dir: str | None = None
    async_upload: bool = False
    max_ckpt_to_keep: int | None = None


@dataclass
class EnvMonitor:
    enable: bool = False
    monitor_interval: float = 30.0
    hung_timeout: float = 3600.0


@dataclass
class AgenticConfig:
    """The whole run (`AgenticConfig` in ROLL: BaseConfig → PPOConfig → AgenticConfig)."""

    # how roll.config.loader's pydantic check reads a file, nested sections included: unknown keys are
    # errors, numbers are accepted where a string is meant
    __pydantic_config__ = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    # --- base
    exp_name: str = "agentic_pipeline"
    seed: int = 42
    output_dir: str = "./output"
    logging_dir: str = "./output/logs"
    render_save_dir: str | None = None
    rollout_dump_dir: str | None = None
    system_envs: dict | None = None
    # tensorboard | stdout | jsonl (wandb/swanlab/trackio: not built in)
    track_with: str = field(default="tensorboard", metadata=rule(rules.tracker))
    tracker_kwargs: dict | None = None
    checkpoint_config: CheckpointConfig = field(default_factory=CheckpointConfig)
    num_gpus_per_node: int = 8
    num_nodes: int | None = None
    max_steps: int = field(default=500, metadata=rule(above(0)))
    save_steps: int = field(default=50, metadata=rule(above(0)))
    logging_steps: int = field(default=1, metadata=rule(above(0)))
    eval_steps: int = field(default=10, metadata=rule(above(0)))
    resume_from_checkpoint: Any = False  # False | True (latest) | a checkpoint path
    rollout_batch_size: int = 128
    val_batch_size: int = 128
    sequence_length: int | None = field(default=None, metadata=rule(rules.sequence_length))
    prompt_length: int | None = None
    response_length: int | None = None
    max_running_requests: int = 128
    model_update_buffer_size_mb: int = 1024
    pipeline_cls: str | None = None
    # --- ppo
    async_generation_ratio: float = field(default=0, metadata=rule(rules.async_ratio))
    ppo_epochs: int = field(default=1, metadata=rule(above(0)))
    adv_estimator: str = field(default="gae", metadata=rule(rules.adv_estimator))
    gamma: float = 1.0
    lambd: float = 0.95
    pg_clip: float = 0.2
    use_pg_clip_range: bool = False
    pg_clip_low: float = 0.2
    pg_clip_high: float = 0.2
    dual_clip_loss: bool = False
    value_clip: float | None = field(
        default=None,
        metadata=rule(
            lambda v: None if v is None or v > 0 else f"must be > 0 (or null = no clipping), got {v}"
        ),
    )
    init_kl_coef: float = 0.2
    target_kl: float | None = None
    kl_horizon: int = 10000
    kl_penalty: str = field(default="kl", metadata=rule(rules.kl_penalty))
    add_token_level_kl: bool = False
    use_kl_loss: bool = False
    kl_loss_coef: float = 0.0
    entropy_loss_coef: float = 0.0
    loss_agg_mode: str = field(
        default="seq-mean-token-mean",
        metadata=rule(
            one_of(
                {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"}, "mode"
            )
        ),
    )
    reward_clip: float | None = None
    whiten_rewards: bool = False
    whiten_advantages: bool = False
    advantage_clip: float | None = None
    critic_warmup: int = 0
    max_grad_norm: float = 1.0
    enable_reference: bool = False
    enable_old_logprobs_recompute: bool | None = None
    force_disable_old_logprobs_recompute: bool = False
    batch_adjust_mode: str = field(
        default="copy",
        metadata=rule(choice({"copy", "delete", "auto", "random_sample"}, "unknown mode {v}")),
    )
    ratio_type: str = field(
        default="token",
        metadata=rule(choice({"token"}, "{v} is not implemented in roll-core 0.1; use 'token'")),
    )
    norm_mean_type: str | None = None
    norm_std_type: str | None = None
    reward_normalization: RewardNormalization = field(default_factory=RewardNormalization)
    episode_reward_weight: float = 1.0
    step_reward_weight: float = 1.0
    step_reward_gamma: float = 0.95
    train_infer_correction: dict | None = field(
        default=None, metadata=rule(unset("not implemented in roll-core 0.1; remove the key"))
    )
    # --- models and roles
    pretrain: str | None = None
    reward_pretrain: str | None = None
    actor_train: WorkerConfig = field(default_factory=WorkerConfig)
    actor_infer: WorkerConfig = field(default_factory=WorkerConfig)
    reference: WorkerConfig | None = None
    critic: WorkerConfig | None = None
    reward: WorkerConfig | None = None
    # --- agentic
    train_env_manager: EnvManagerConfig = field(default_factory=EnvManagerConfig)
    val_env_manager: EnvManagerConfig = field(default_factory=EnvManagerConfig)
    custom_envs: dict[str, CustomEnv] = field(default_factory=dict)
    env_monitor: EnvMonitor = field(default_factory=EnvMonitor)
    skip_mock_system_prompt: bool = False
    # --- catalogue keys brought in by `defaults:` (examples/config/*.yaml); known, used only through ${...}
    custom_env: dict | None = None
    max_tokens_per_step: int | None = None
    max_actions_per_traj: int | None = None
    env_manager_cls: str | None = None
    agent_system_template: str | None = None
    agent_template: str | None = None
    deepspeed_zero: dict | None = None
    deepspeed_zero2: dict | None = None
    deepspeed_zero3: dict | None = None
    deepspeed_zero3_cpuoffload: dict | None = None
    hydra: dict | None = None  # Hydra's own settings; accepted and ignored (we write no Hydra output dirs)
    # --- our additions
    platform: str = "auto"  # auto (the available one of highest priority) | cpu | cuda | a plugin's (npu)
    # local (one process, same interfaces) | ray (Ray actors) | auto (ray iff a role has world_size > 1)
    runtime: str = field(
        default="auto",
        metadata=rule(choice({"auto", "local", "ray"}, "must be 'auto', 'local' or 'ray', got {v}")),
    )
    ray_init_kwargs: dict | None = None
    rollout_timeout_s: float = 1800.0  # every wait for rollouts ends with an error after this
    worker_timeout_s: float = 1800.0  # every wait on a worker call ends with an error after this
    progress_bar: bool = True
