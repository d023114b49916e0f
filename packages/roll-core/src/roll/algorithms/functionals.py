"""Pure tensor functions of the RL step: rewards, KL, advantages, losses (formulas: reference/roll.md §5).

Shapes: B samples, T response-aligned positions (position t scores the token at t+1 of the sequence).
`mask` is the response mask (1 where the token was produced by the model). Nothing here touches a model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch

EPS_STD = 1e-6


# --------------------------------------------------------------------------------------------- masked stats
def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over masked entries; 0 where nothing is masked in."""
    if dim is None:
        return masked_sum(x, mask) / mask.sum().clamp(min=1)
    return masked_sum(x, mask, dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_sum((x - mean) ** 2, mask) / n.clamp(min=1)
    if unbiased:
        if n < 2:
            return torch.zeros((), dtype=x.dtype)
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x − mean)/sqrt(var + 1e-8) over masked entries (unbiased var); the mean is added back if not shift_mean."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


# ------------------------------------------------------------------------------------ response-level reward
def group_reward_norm(
    scores: torch.Tensor, groups: Sequence[Hashable] | None, method: str = "mean_std"
) -> torch.Tensor:
    """Normalise per-sample scores within groups (None = one group: the batch).

    identity: s; mean: s − mean_g; mean_std: (s − mean_g)/(std_g + 1e-6) with std unbiased, and 0 for
    a group of one sample or with std ≤ 1e-6; asym_clip: mean_std, then clamped to [−1, 3].
    """
    if method == "identity":
        return scores.clone()
    if method not in ("mean", "mean_std", "asym_clip"):
        raise ValueError(f"unknown reward normalization method {method!r}")
    scores = scores.float()
    keys = list(groups) if groups is not None else [0] * len(scores)
    if len(keys) != len(scores):
        raise ValueError(f"{len(keys)} group keys for {len(scores)} scores")
    out = torch.zeros_like(scores)
    index: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        index.setdefault(k, []).append(i)
    for idx in index.values():
        sel = torch.tensor(idx)
        s = scores[sel]
        mean = s.mean()
        if method == "mean":
            out[sel] = s - mean
            continue
        std = s.std() if len(idx) > 1 else torch.tensor(0.0)
        out[sel] = torch.zeros_like(s) if len(idx) < 2 or std <= EPS_STD else (s - mean) / (std + EPS_STD)
    if method == "asym_clip":
        out = out.clamp(-1.0, 3.0)
    return out


def token_level_rewards(response_rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] response-level rewards → [B, T] with each reward on the sample's last masked position."""
    B, T = mask.shape
    out = torch.zeros(B, T, dtype=torch.float32)
    positions = torch.arange(T).expand(B, T)
    last = (positions * (mask > 0)).argmax(dim=1)
    has = mask.sum(dim=1) > 0
    out[torch.arange(B)[has], last[has]] = response_rewards[has].float()
    return out


# -------------------------------------------------------------------------------------------------- KL
def kl_estimate(log_probs: torch.Tensor, ref_log_probs: torch.Tensor, kind: str = "kl") -> torch.Tensor:
    """Per-token KL estimate of π vs π_ref: kl/k1 = lp − lp_ref, abs = |·|, mse = ½(·)², k3 (clamped to ±10)."""
    d = log_probs - ref_log_probs
    if kind in ("kl", "k1"):
        return d
    if kind == "abs":
        return d.abs()
    if kind == "mse":
        return 0.5 * d.square()
    if kind in ("k3", "low_var_kl"):
        neg = -d
        return (torch.exp(neg) - neg - 1).clamp(-10, 10)
    raise NotImplementedError(f"KL estimator {kind!r} is not implemented (kl, abs, mse, k3)")


class FixedKLController:
    """β stays at its initial value."""

    def __init__(self, init_kl_coef: float) -> None:
        self.value = init_kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        return None


class AdaptiveKLController:
    """β ← β·(1 + clip(kl/target − 1, ±0.2)·n/horizon) (Ziegler et al.)."""

    def __init__(self, init_kl_coef: float, target_kl: float, horizon: int) -> None:
        self.value, self.target, self.horizon = init_kl_coef, target_kl, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = max(-0.2, min(0.2, current_kl / self.target - 1))
        self.value *= 1 + error * n_steps / self.horizon


def make_kl_controller(init_kl_coef: float, target_kl: float | None, horizon: int):
    return (
        FixedKLController(init_kl_coef)
        if target_kl is None
        else AdaptiveKLController(init_kl_coef, target_kl, horizon)
    )


# ------------------------------------------------------------------------------------------- advantages
def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + γ·G_{t+1} over the full length."""
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lambd: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """δ_t = r_t + γV_{t+1} − V_t (V past the end = 0), A_t = δ_t + γλA_{t+1}; returns (A, A + V)."""
    values = values * mask
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(T)):
        next_v = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lambd * last
        adv[:, t] = last
    return adv, adv + values


AdvantageEstimator = Callable[
    [torch.Tensor, torch.Tensor, float, float, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]
]
_ESTIMATORS: dict[str, AdvantageEstimator] = {}


def register_advantage_estimator(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Register `fn(token_rewards, mask, gamma, lambd, values) -> (advantages, returns)` as `adv_estimator:
    name` (whitening, masking and clipping stay in compute_advantages)."""

    def register(fn: AdvantageEstimator) -> AdvantageEstimator:
        _ESTIMATORS[name] = fn
        return fn

    return register


def advantage_estimators() -> list[str]:
    return sorted(_ESTIMATORS)


@register_advantage_estimator("gae")
def _gae(rewards, mask, gamma, lambd, values):
    if values is None:
        raise ValueError("gae needs values from a critic")
    return gae_advantages(rewards, values.float(), mask, gamma, lambd)


@register_advantage_estimator("grpo")  # the group baseline is in the reward normalisation before this
@register_advantage_estimator("reinforce")  # REINFORCE++: whitened discounted returns
def _discounted(rewards, mask, gamma, lambd, values):
    adv = discounted_returns(rewards, gamma)
    return adv, adv.clone()


def compute_advantages(
    token_rewards: torch.Tensor,
    mask: torch.Tensor,
    estimator: str,
    gamma: float = 1.0,
    lambd: float = 0.95,
    values: torch.Tensor | None = None,
    whiten_rewards: bool = False,
    whiten_advantages: bool = False,
    advantage_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """(advantages, returns, metrics) from the registered `estimator`; masked, whitened, clipped."""
    metrics: dict[str, float] = {}
    mask = mask.float()
    if mask.sum() < 2:  # whitening is undefined below 2 tokens
        whiten_rewards = whiten_advantages = False
    r = token_rewards.float()
    if whiten_rewards:
        r = masked_whiten(r, mask) * mask
    if estimator not in _ESTIMATORS:
        raise NotImplementedError(
            f"advantage estimator {estimator!r} is not implemented ({', '.join(advantage_estimators())})"
        )
    adv, returns = _ESTIMATORS[estimator](r, mask, gamma, lambd, values)
    if whiten_advantages:
        adv = masked_whiten(adv, mask)
    adv = adv * mask
    if advantage_clip is not None:
        clipped = (adv.abs() > advantage_clip).float()
        metrics["critic/advantage_clip_frac"] = float(masked_mean(clipped, mask))
        adv = adv.clamp(-advantage_clip, advantage_clip)
    return adv, returns * mask, metrics


# -------------------------------------------------------------------------------------------- losses
def agg_loss(
    loss: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
) -> torch.Tensor:
    """Aggregate a [B, T] loss. `num_tokens`/`num_seqs` are the global denominators (defaults: this batch).

    token-mean: ΣL·m / N_tok; seq-mean-token-mean: Σ_i mean_t(L_i) / N_seq;
    seq-mean-token-sum: Σ_i Σ_t L_i / N_seq; seq-mean-token-sum-norm: Σ_i Σ_t L_i / T (T = mask width).
    """
    mask = mask.to(loss.dtype)
    if mode == "token-mean":
        denom = num_tokens if num_tokens is not None else mask.sum().clamp(min=1)
        return (loss * mask).sum() / denom
    has = (mask.sum(dim=1) > 0).to(loss.dtype)
    n_seq = num_seqs if num_seqs is not None else has.sum().clamp(min=1)
    per_seq_sum = (loss * mask).sum(dim=1)
    if mode == "seq-mean-token-mean":
        per_seq = per_seq_sum / mask.sum(dim=1).clamp(min=1)
        return (per_seq * has).sum() / n_seq
    if mode == "seq-mean-token-sum":
        return per_seq_sum.sum() / n_seq
    if mode == "seq-mean-token-sum-norm":
        return per_seq_sum.sum() / mask.shape[1]
    raise ValueError(f"unknown loss_agg_mode {mode!r}")


def ppo_policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token PPO loss −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A); with dual clip c (only where A<0):
    min(that, −c·A). Returns (loss [B,T], per-token diagnostics)."""
    ratio = torch.exp(log_probs - old_log_probs)
    surr1 = ratio * advantages
    surr2 = ratio.clamp(1 - clip_low, 1 + clip_high) * advantages
    loss = -torch.min(surr1, surr2)
    if dual_clip is not None:
        dual = torch.min(loss, -dual_clip * advantages)
        loss = torch.where(advantages < 0, dual, loss)
    diag = {
        "ratio": ratio.detach(),
        "clipped": (surr2 < surr1).float().detach(),
        "clipped_high": ((ratio > 1 + clip_high) & (advantages > 0)).float().detach(),
        "clipped_low": ((ratio < 1 - clip_low) & (advantages < 0)).float().detach(),
    }
    return loss, diag


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    value_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token critic loss ½(V − Ret)²; with `value_clip` c: ½·max((V − Ret)², (clip(V, V_old ± c) − Ret)²).

    Returns (loss [B, T], diagnostics: `clipped` = where the clipped term is the larger one)."""
    unclipped = (values - returns) ** 2
    if value_clip is None:
        return 0.5 * unclipped, {"clipped": torch.zeros_like(values).detach()}
    v_clip = old_values + (values - old_values).clamp(-value_clip, value_clip)
    clipped = (v_clip - returns) ** 2
    return 0.5 * torch.max(unclipped, clipped), {"clipped": (clipped > unclipped).float().detach()}


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = logsumexp(l) − Σ softmax(l)·l, per position."""
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.logsumexp(logits.float(), dim=-1) - (probs * logits.float()).sum(-1)


def log_probs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits) gathered at labels (same leading shape)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
