"""LR schedules follow transformers' curves (ROLL's): warmup from 0, decay to the run's end, resized in place once
the run's optimizer-step count is known."""

from types import SimpleNamespace

import pytest
import torch

from roll.strategies.lr_schedule import build_scheduler, resize_scheduler, warmup_steps


def _args(kind: str, warmup: int = 0, ratio: float = 0.0):
    return SimpleNamespace(lr_scheduler_type=kind, warmup_steps=warmup, warmup_ratio=ratio)


def _optimizer(lr: float = 1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _curve(scheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(round(scheduler.optimizer.param_groups[0]["lr"], 4))
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_cosine_with_warmup_starts_at_zero_and_ends_at_zero():
    s = build_scheduler(_optimizer(), _args("cosine", warmup=2), total_steps=10)
    assert _curve(s, 11) == [0.0, 0.5, 1.0, 0.9619, 0.8536, 0.6913, 0.5, 0.3087, 0.1464, 0.0381, 0.0]


@pytest.mark.parametrize(("kind", "first"), [("constant", 1.0), ("constant_with_warmup", 0.0)])
def test_constant_ignores_warmup_unlike_constant_with_warmup(kind, first):
    s = build_scheduler(_optimizer(), _args(kind, warmup=2), total_steps=10)
    assert _curve(s, 3)[0] == first
    assert _curve(s, 2) == [1.0, 1.0]


def test_warmup_ratio_is_rounded_up_over_the_run():
    assert warmup_steps(_args("linear", ratio=0.05), 30) == 2
    assert warmup_steps(_args("linear", warmup=3, ratio=0.5), 30) == 3


def test_resize_keeps_the_step_reached_and_follows_the_longer_curve():
    opt = _optimizer(lr=0.1)
    s = build_scheduler(opt, _args("linear"), total_steps=4)
    _curve(s, 2)  # at step 2 of 4: lr 0.05
    resize_scheduler(s, _args("linear"), total_steps=10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.08)
    assert s.get_last_lr() == pytest.approx([0.08])
    assert _curve(s, 3) == [0.08, 0.07, 0.06]


def test_an_unknown_schedule_is_refused_by_name():
    with pytest.raises(ValueError, match="nosuch"):
        build_scheduler(_optimizer(), _args("nosuch"), total_steps=4)
