"""ROLL's Ascend quick-start config on 4 stand-in NPUs (conftest.py; placement and validation, no kernels)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from roll.cli import EXAMPLES_DIR, main
from roll.config import finalize, load_config, validate
from roll.platforms import current_platform
from roll_ascend import NpuPlatform

REF = EXAMPLES_DIR / "qwen2.5-0.5B-agentic"
# What this machine lacks, not what Ascend needs: model weights, vllm/vllm-ascend and flash-attn.
MACHINE_OVERRIDES = [
    "pretrain=builtin:tiny-qwen2",
    "actor_train.model_args.attn_implementation=sdpa",
    "actor_infer.strategy_args.strategy_name=hf_infer",
]


def _quick_start(overrides=()):
    cfg, _ = load_config(REF, "agentic_val_sokoban", list(overrides))
    finalize(cfg)
    return cfg


def test_quick_start_dry_run_places_roles_on_4_npus(fake_npu, capsys):
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed_train's config check needs roll-core[deepspeed]")
    rc = main(
        ["--config_path", str(REF), "--config_name", "agentic_val_sokoban", "--dry-run", *MACHINE_OVERRIDES]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "placement plan (platform npu (4 devices, backend hccl))" in out
    plan = out[out.index("placement plan") :]
    assert "actor_train" in plan and "deepspeed_train" in plan and "[0, 1]" in plan


def test_unedited_quick_start_plan_and_plugin_settings(fake_npu):
    cfg = _quick_start()
    plan = {p.role: p for p in validate(cfg, platform=current_platform(), check_environment=False)}
    assert plan["actor_train"].devices == [0, 1] and plan["actor_train"].strategy == "deepspeed_train"
    assert plan["actor_infer"].devices == [2]
    problems = dict(NpuPlatform.check_role("actor_infer", cfg.actor_infer))
    # the plugin, not the user, turns prefix caching off for vllm(-ascend)
    assert cfg.actor_infer.strategy_args.strategy_config["enable_prefix_caching"] is False
    assert cfg.actor_infer.strategy_args.strategy_config["gpu_memory_utilization"] == 0.6
    if importlib.util.find_spec("vllm_ascend") is None:
        assert "vllm-ascend" in problems["actor_infer.strategy_args.strategy_name"]
    assert NpuPlatform.check_role("actor_train", cfg.actor_train) == []


def test_megatron_names_the_key_and_the_fix(fake_npu):
    cfg = _quick_start(["actor_train.strategy_args.strategy_name=megatron_train"])
    assert NpuPlatform.check_role("actor_train", cfg.actor_train) == [
        (
            "actor_train.strategy_args.strategy_name",
            "'megatron_train' is not supported on Ascend here; use deepspeed_train",
        )
    ]


def test_bf16_on_a_chip_without_it(fake_npu):
    fake_npu.chip = "Ascend910A"
    cfg = _quick_start()
    problems = dict(NpuPlatform.check_role("actor_train", cfg.actor_train))
    assert "bf16 is not supported" in problems["actor_train.model_args.dtype"]


def test_too_few_npus_is_reported_on_the_mapping(fake_npu, capsys):
    fake_npu.count = 2
    rc = main(
        ["--config_path", str(REF), "--config_name", "agentic_val_sokoban", "--dry-run", *MACHINE_OVERRIDES]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "actor_infer.device_mapping" in err and "2 npu device(s)" in err


def test_dry_run_reports_megatron_and_forces_prefix_caching_off(fake_npu, capsys):
    rc = main(
        [
            "--config_path",
            str(REF),
            "--config_name",
            "agentic_val_sokoban",
            "--dry-run",
            *MACHINE_OVERRIDES,
            "actor_train.strategy_args.strategy_name=megatron_train",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "actor_train.strategy_args.strategy_name" in err and "use deepspeed_train" in err
    cfg = _quick_start()
    validate(cfg, platform=current_platform(), check_environment=False)
    assert cfg.actor_infer.strategy_args.strategy_config["enable_prefix_caching"] is False


def test_platform_npu_without_the_runtime_stops_with_the_one_line(no_torch_npu, capsys):
    no_torch_npu.setitem(sys.modules, "torch_npu", None)
    rc = main(["--config_path", "tiny-cpu", "--config_name", "agentic_sokoban", "--dry-run", "platform=npu"])
    err = capsys.readouterr().err
    assert rc == 2
    line = next(ln for ln in err.splitlines() if "platform:" in ln)
    assert "Ascend runtime not found: torch-npu is not installed" in line and "set_env.sh" in line
    # platform: auto on the same machine falls back to CPU and plans the job
    assert main(["--config_path", "tiny-cpu", "--config_name", "agentic_sokoban", "--dry-run"]) == 0
    assert "placement plan (platform cpu" in capsys.readouterr().out
