"""`hf_infer`: generation with our own KV-cached sampling loop, so that it returns, per row, exactly the token
ids the model produced and their log-probs under the model (temperature 1, before top-k/top-p), stopping on EOS."""

from __future__ import annotations

import torch

from roll.strategies.base import GenerationOutput
from roll.strategies.hf_base import _HfBase


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        cum = probs.cumsum(-1)
        remove = cum - probs > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


@torch.no_grad()
def sample(
    model,
    prompts: list[list[int]],
    max_new_tokens: list[int],
    stop_ids: set[int],
    pad_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
) -> list[GenerationOutput]:
    """Batched KV-cached sampling from left-padded prompts; per-row budgets; stops at a stop id."""
    device = next(model.parameters()).device
    B = len(prompts)
    outputs = [GenerationOutput([], [], "length") for _ in range(B)]
    active = [i for i in range(B) if max_new_tokens[i] > 0 and prompts[i]]
    if not active:
        return outputs
    rows = [prompts[i] for i in active]
    budgets = [max_new_tokens[i] for i in active]
    n, width = len(rows), max(len(r) for r in rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, width - len(r) :] = torch.tensor(r)
        attn[j, width - len(r) :] = 1
    ids, attn = ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]
    next_pos = pos[:, -1:] + 1
    done = [False] * n
    greedy = not do_sample or temperature <= 0
    for _ in range(max(budgets)):
        logits = logits.float()
        raw_logp = torch.log_softmax(logits, dim=-1)
        if greedy:
            tok = logits.argmax(-1)
        else:
            filtered = _filter_logits(logits / temperature, top_k, top_p)
            probs = torch.softmax(filtered, dim=-1)
            tok = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(device)
        tok_list = tok.tolist()
        lp_list = raw_logp.gather(-1, tok[:, None]).squeeze(-1).tolist()
        for j in range(n):
            if done[j]:
                continue
            o = outputs[active[j]]
            o.token_ids.append(tok_list[j])
            o.log_probs.append(lp_list[j])
            if tok_list[j] in stop_ids:
                done[j], o.finish_reason = True, "stop"
            elif len(o.token_ids) >= budgets[j]:
                done[j] = True
        if all(done):
            break
        feed = torch.tensor([pad_id if done[j] else tok_list[j] for j in range(n)], device=device)[:, None]
        attn = torch.cat([attn, torch.ones((n, 1), dtype=attn.dtype, device=device)], dim=1)
        out = model(
            input_ids=feed, attention_mask=attn, position_ids=next_pos, past_key_values=past, use_cache=True
        )
        past, logits = out.past_key_values, out.logits[:, -1]
        next_pos = next_pos + 1
    return outputs


class HfInferStrategy(_HfBase):
    """Generation + forward log-probs with a transformers model in eval mode."""

    def __init__(self, worker_config, seed: int = 42, device: str = "cpu") -> None:
        super().__init__(worker_config, seed, device)
        self.model.eval()
        self.generator = torch.Generator().manual_seed(seed)
        stop = {self.tokenizer.eos_token_id}
        if self.tokenizer.pad_token_id is not None:
            stop.add(self.tokenizer.pad_token_id)
        self.stop_ids = {s for s in stop if s is not None}

    def generate(
        self, prompts: list[list[int]], max_new_tokens: list[int], generating_args
    ) -> list[GenerationOutput]:
        g = generating_args
        outputs: list[GenerationOutput] = []
        chunk = max(
            1,
            self.worker_config.infer_batch_size if self.worker_config.infer_batch_size > 0 else len(prompts),
        )
        chunk = max(chunk, len(prompts)) if self.device == "cpu" else chunk
        for s in range(0, len(prompts), chunk):
            outputs += sample(
                self.model,
                prompts[s : s + chunk],
                max_new_tokens[s : s + chunk],
                self.stop_ids,
                self.tokenizer.pad_token_id,
                temperature=g.temperature,
                top_k=g.top_k,
                top_p=g.top_p,
                do_sample=g.do_sample,
                generator=self.generator,
            )
        return outputs

    def get_rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
