"""Layer 2: the pure functions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from roll.algorithms import (
    AdaptiveKLController,
    FixedKLController,
    advantage_estimators,
    agg_loss,
    compute_advantages,
    entropy_from_logits,
    gae_advantages,
    group_reward_norm,
    kl_estimate,
    masked_whiten,
    ppo_policy_loss,
    register_advantage_estimator,
    token_level_rewards,
    value_loss,
)


def close(a, b, tol=1e-5):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol
    )


def test_group_norm_mean_std_per_group():
    s = torch.tensor([1.0, 3.0, 5.0, 5.0])
    out = group_reward_norm(s, ["a", "a", "b", "b"], "mean_std")
    # group a: mean 2, unbiased std sqrt(2) → ±1/sqrt(2); group b: zero spread → 0
    h = 1 / math.sqrt(2)
    assert close(out, [-h / (1 + 1e-6 / math.sqrt(2)), h / (1 + 1e-6 / math.sqrt(2)), 0, 0])


def test_group_norm_single_member_group_is_zero():
    out = group_reward_norm(torch.tensor([4.0, 1.0, 2.0]), ["x", "y", "y"], "mean_std")
    assert out[0] == 0


def test_group_norm_mean_identity_batch():
    s = torch.tensor([1.0, 2.0, 6.0])
    assert close(group_reward_norm(s, None, "mean"), [-2, -1, 3])
    assert close(group_reward_norm(s, None, "identity"), s)
    with pytest.raises(ValueError):
        group_reward_norm(s, None, "median")


def test_group_norm_asym_clip_clamps():
    s = torch.tensor([0.0] * 9 + [10.0])
    out = group_reward_norm(s, None, "asym_clip")
    # (10 - 1)/std where std = sqrt(10) → 2.846 (inside [-1, 3]); the zeros → -0.316
    assert close(out[-1], 9 / math.sqrt(10), 1e-4) and close(out[0], -1 / math.sqrt(10), 1e-4)
    big = group_reward_norm(torch.tensor([0.0] * 19 + [1.0]), None, "asym_clip")
    assert big.max() == 3.0


def test_token_level_reward_on_last_response_token():
    mask = torch.tensor([[0, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    r = token_level_rewards(torch.tensor([2.0, 5.0, -1.0]), mask)
    assert r.tolist() == [[0, 0, 0, 0, 2, 0], [0] * 6, [0, 0, 0, 0, 0, -1]]


def test_kl_estimators():
    lp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    assert close(kl_estimate(lp, ref, "kl"), [0.5, -1.0])
    assert close(kl_estimate(lp, ref, "k1"), [0.5, -1.0])
    assert close(kl_estimate(lp, ref, "abs"), [0.5, 1.0])
    assert close(kl_estimate(lp, ref, "mse"), [0.125, 0.5])
    # k3: exp(ref-lp) - (ref-lp) - 1
    assert close(kl_estimate(lp, ref, "k3"), [math.exp(-0.5) + 0.5 - 1, math.exp(1) - 1 - 1])
    with pytest.raises(NotImplementedError):
        kl_estimate(lp, ref, "full")


def test_kl_controllers():
    fixed = FixedKLController(0.2)
    fixed.update(5.0, 10)
    assert fixed.value == 0.2
    ad = AdaptiveKLController(0.2, target_kl=1.0, horizon=100)
    ad.update(current_kl=2.0, n_steps=10)  # error clipped to +0.2 → β·(1 + 0.2·10/100)
    assert close(ad.value, 0.2 * 1.02)
    ad.update(current_kl=0.9, n_steps=10)  # error -0.1
    assert close(ad.value, 0.2 * 1.02 * 0.99)


def test_grpo_every_response_token_gets_R():
    mask = torch.tensor([[0, 1, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0]]).float()
    tr = token_level_rewards(torch.tensor([0.7, -0.3]), mask)
    adv, ret, _ = compute_advantages(tr, mask, "grpo", gamma=1.0)
    assert close(adv, torch.tensor([[0, 0.7, 0.7, 0, 0.7, 0.7], [-0.3, -0.3, 0, 0, 0, 0]]))
    assert close(ret, adv)


def test_reinforce_discount():
    mask = torch.ones(1, 3)
    tr = torch.tensor([[1.0, 0.0, 2.0]])
    adv, _, _ = compute_advantages(tr, mask, "reinforce", gamma=0.5)
    assert close(adv, [[1 + 0.5 * 0 + 0.25 * 2, 0 + 0.5 * 2, 2]])


def test_estimators_are_a_registry(monkeypatch):
    """A registered estimator is found by name, and the shared masking and clipping still apply to it."""
    from roll.algorithms import functionals

    assert {"gae", "grpo", "reinforce"} <= set(advantage_estimators())
    monkeypatch.setattr(functionals, "_ESTIMATORS", dict(functionals._ESTIMATORS))

    @register_advantage_estimator("constant_three")
    def constant(rewards, mask, gamma, lambd, values):
        return torch.full_like(rewards, 3.0), torch.zeros_like(rewards)

    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, _, metrics = compute_advantages(torch.zeros(1, 3), mask, "constant_three", advantage_clip=2.0)
    assert close(adv, [[2.0, 2.0, 0.0]]) and metrics["critic/advantage_clip_frac"] == 1.0
    with pytest.raises(NotImplementedError, match="constant_three, gae, grpo, reinforce"):
        compute_advantages(torch.zeros(1, 3), mask, "gigpo")


def test_gae_hand_computed():
    r = torch.tensor([[0.0, 1.0]])
    v = torch.tensor([[0.5, 0.2]])
    m = torch.ones(1, 2)
    adv, ret = gae_advantages(r, v, m, gamma=0.9, lambd=0.8)
    d1 = 1.0 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.5
    a0 = d0 + 0.9 * 0.8 * d1
    assert close(adv, [[a0, d1]]) and close(ret, [[a0 + 0.5, d1 + 0.2]])


def test_value_loss_hand_computed():
    values = torch.tensor([[1.0, 2.5]], requires_grad=True)
    old = torch.tensor([[0.5, 2.0]])
    ret = torch.tensor([[0.0, 3.0]])
    mask = torch.ones(1, 2)
    # unclipped: ½(V − Ret)² = ½·[1, 0.25]
    plain, diag = value_loss(values, old, ret, None)
    assert close(plain, [[0.5, 0.125]]) and diag["clipped"].sum() == 0
    # value_clip 0.2: V_clip = [0.7, 2.2]; (V_clip − Ret)² = [0.49, 0.64]; max with [1, 0.25] → [1, 0.64]
    loss, diag = value_loss(values, old, ret, 0.2)
    assert close(loss, [[0.5, 0.32]]) and diag["clipped"].tolist() == [[0.0, 1.0]]
    total = agg_loss(loss, mask, "seq-mean-token-mean")
    assert close(total, 0.41)
    total.backward()
    # token 0: d/dV ½(V−Ret)²/2 = (1 − 0)/2; token 1: the clipped term is saturated → no gradient
    assert close(values.grad, [[0.5, 0.0]])


def test_gae_advantages_through_compute_advantages():
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    v = torch.tensor([[0.2, 0.4, 0.6, 9.0]])
    m = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adv, ret, _ = compute_advantages(r, m, "gae", gamma=1.0, lambd=1.0, values=v)
    # λ = γ = 1: A_t = Σ_{k≥t} r_k − V_t (the padded value is masked out)
    assert close(adv, [[0.8, 0.6, 0.4, 0.0]]) and close(ret, [[1.0, 1.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="critic"):
        compute_advantages(r, m, "gae")


def test_whitening_and_clip():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    w = masked_whiten(x, mask)
    assert close(w[0, :3], [-1, 0, 1], 1e-4)  # unbiased var of 1,2,3 = 1
    adv, _, metrics = compute_advantages(x * mask, mask, "grpo", whiten_advantages=True, advantage_clip=0.5)
    assert adv.abs().max() <= 0.5 and adv[0, 3] == 0
    assert "critic/advantage_clip_frac" in metrics


def test_whitening_skipped_below_two_tokens():
    mask = torch.tensor([[0.0, 1.0, 0.0]])
    tr = torch.tensor([[0.0, 3.0, 0.0]])
    adv, _, _ = compute_advantages(tr, mask, "grpo", whiten_advantages=True, whiten_rewards=True)
    assert close(adv, [[0, 3, 0]])


def test_ppo_loss_clip_and_dual_clip():
    lp = torch.log(torch.tensor([1.5, 0.5, 1.0, 4.0]))
    old = torch.zeros(4)
    adv = torch.tensor([1.0, -1.0, 2.0, -1.0])
    loss, diag = ppo_policy_loss(lp, old, adv, 0.2, 0.2)
    # ratios 1.5, 0.5, 1, 4: -min(ρA, clip(ρ)A)
    assert close(loss, [-1.2, 0.8, -2.0, 4.0])
    assert diag["clipped_high"].tolist() == [1, 0, 0, 0]
    assert diag["clipped_low"].tolist() == [0, 1, 0, 0]
    dual, _ = ppo_policy_loss(lp, old, adv, 0.2, 0.2, dual_clip=3.0)
    assert close(dual, [-1.2, 0.8, -2.0, 3.0])  # ρ=4, A=-1: min(4, 3) = 3


def test_loss_aggregation_modes():
    L = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert close(agg_loss(L, m, "token-mean"), (1 + 2 + 4) / 3)
    assert close(agg_loss(L, m, "seq-mean-token-mean"), (1.5 + 4) / 2)
    assert close(agg_loss(L, m, "seq-mean-token-sum"), (3 + 4) / 2)
    assert close(agg_loss(L, m, "seq-mean-token-sum-norm"), 7 / 3)
    assert close(agg_loss(L, m, "token-mean", num_tokens=7), 1.0)  # global denominator


def test_entropy():
    logits = torch.zeros(1, 4)
    assert close(entropy_from_logits(logits), [math.log(4)])


def test_advantage_stage_normalises_scores_per_group_and_spreads_them_over_response_tokens():
    """Two groups of two episodes, GRPO with mean_std per traj_group_id: each episode's advantage is its
    score's z-score within its group, on its model tokens only; the batch gains advantages and returns."""
    from roll.agentic.advantage_stage import advantage_stage
    from roll.agentic.env_manager import Trajectory
    from roll.agentic.pipeline import collate
    from roll.config.schema import AgenticConfig

    def traj(group: str, score: float) -> Trajectory:
        return Trajectory(
            env_id=0, group_id=0, tag="T", traj_group_id=group, traj_id=f"{group}-{score}", episode_id=0,
            seed=0, input_ids=[5, 6, 7, 8], model_token=[0, 0, 1, 1], infer_logprobs=[0.0] * 4,
            prompt_length=2, step_scores=[score],
        )  # fmt: skip

    trajs = [traj("a", 1.0), traj("a", 3.0), traj("b", 0.0), traj("b", 0.0)]
    cfg = AgenticConfig(adv_estimator="grpo")
    cfg.reward_normalization.grouping, cfg.reward_normalization.method = "traj_group_id", "mean_std"
    batch = collate(trajs, pad_id=0)
    metrics = advantage_stage(batch, trajs, cfg, values=None, kl_ctrl=None)
    adv, mask = batch["advantages"], batch["response_mask"]
    per_episode = (adv * mask).sum(1) / mask.sum(1)
    z = 1 / math.sqrt(2)  # (3 − 2) / std([1, 3]) with the unbiased std
    assert close(per_episode, [-z, z, 0.0, 0.0], tol=1e-4)
    assert close(adv * (1 - mask), torch.zeros_like(adv))  # nothing on prompt or padding tokens
    assert torch.equal(batch["returns"], adv) and metrics["critic/score/max"] == 3.0
