"""Token-in-token-out for agents that send whole chat histories: OpenAI messages → one token stream.

An agent sends its full history on every request. The first request of a segment is rendered with the
policy's chat template and tokenised whole; for each later one we check, in text, that its rendering starts
with what we already hold (the previous prompt, the model's answer as the template writes it back, the
turn suffix). If it does, only the new text is tokenised and appended, so the model's own sampled ids stay
exactly as generated (prefix reuse). If the agent re-rendered its history differently (edited, trimmed or
rewrote an earlier turn), the stream cannot be extended without training on a context the model never saw:
a new segment starts from the full rendering and the divergence is counted.

Text is compared rather than ids: a sampled response is often not the canonical tokenisation of its own
text, so an id comparison would flag false divergences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_PROBE = "\u2063PROBE\u2063"


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI chat messages → template input: content parts joined to text, None content to ""."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"request has no messages list (got {type(messages).__name__})")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"messages[{i}] is not an object with a role: {m!r:.200}")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        msg = {**m, "content": "" if content is None else str(content)}
        out.append(msg)
    return out


class ChatRenderer:
    """The policy's chat template as text and ids, plus what it writes after an assistant turn's end."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.eos_text = tokenizer.eos_token or ""
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "u"}, {"role": "assistant", "content": _PROBE}], tokenize=False
        )
        after = rendered.split(_PROBE, 1)[1] if _PROBE in rendered else ""
        # text the template puts after an assistant message's end token (ChatML: "\n")
        self.turn_suffix = (
            after.split(self.eos_text, 1)[1] if self.eos_text and self.eos_text in after else ""
        )
        self.turn_suffix_ids = self.encode(self.turn_suffix)

    def render(self, messages: list[dict[str, Any]], tools: list | None = None) -> str:
        kwargs = {"tools": tools} if tools else {}
        return self.tokenizer.apply_chat_template(
            normalize_messages(messages), tokenize=False, add_generation_prompt=True, **kwargs
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


@dataclass
class Segment:
    """A token stream the model saw as one context: every model token's context is exactly what precedes it."""

    input_ids: list[int] = field(default_factory=list)
    model_token: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""  # the rendering these ids stand for (what the next request's rendering must start with)
    prompt_length: int = 0  # ids before the first model token
    turns: list[int] = field(default_factory=list)  # episode turn numbers generated in this segment
    prompt_ends: list[int] = field(default_factory=list)  # per turn: where its prompt ends in input_ids


@dataclass
class PromptStep:
    """What one request added: the ids to generate from, and how they were obtained."""

    prompt_ids: list[int]
    text: str  # the request's full rendering
    new_ids: int  # ids tokenised for this request
    reused_ids: int  # ids kept from earlier turns (0 on a segment's first request)
    diverged: bool  # the request did not extend the previous turn: a new segment started


class TokenStream:
    """One episode's segments, built request by request (`prompt`) and answer by answer (`response`)."""

    def __init__(self, renderer: ChatRenderer) -> None:
        self.renderer = renderer
        self.segments: list[Segment] = []
        self.divergences = 0
        self.reused_ids = 0
        self.turns = 0
        self._open = False  # a prompt is waiting for its response
        self._undo: tuple[int, str] = (0, "")  # (ids, text) of the current segment before the open prompt

    @property
    def current(self) -> Segment | None:
        return self.segments[-1] if self.segments else None

    def prompt(self, messages: list[dict[str, Any]], tools: list | None = None) -> PromptStep:
        if self._open:
            raise RuntimeError("prompt() twice without response(): the previous request was not answered")
        text = self.renderer.render(messages, tools)
        seg = self.current
        diverged = False
        self._undo = (0, "")
        if seg is not None and text.startswith(seg.text):
            self._undo = (len(seg.input_ids), seg.text)
            new = self.renderer.encode(text[len(seg.text) :])
            reused = len(seg.input_ids)
            seg.input_ids += new
            seg.model_token += [0] * len(new)
            seg.logprobs += [0.0] * len(new)
            seg.text = text
        else:
            diverged = seg is not None
            new = self.renderer.encode(text)
            reused = 0
            seg = Segment(list(new), [0] * len(new), [0.0] * len(new), text, len(new))
            self.segments.append(seg)
        self.divergences += int(diverged)
        self.reused_ids += reused
        seg.turns.append(self.turns)
        seg.prompt_ends.append(len(seg.input_ids))
        self._open = True
        return PromptStep(list(seg.input_ids), text, len(new), reused, diverged)

    def response(self, ids: list[int], logprobs: list[float]) -> str:
        """Append the model's ids (and the end token if it was cut short, then the turn suffix); returns the
        text to answer the agent with, which is what its next request will carry back."""
        if not self._open:
            raise RuntimeError("response() without a prompt()")
        seg = self.current
        assert seg is not None
        ids = list(ids)
        if len(logprobs) != len(ids):
            raise ValueError(f"{len(ids)} response ids but {len(logprobs)} logprobs")
        seg.input_ids += ids
        seg.model_token += [1] * len(ids)
        seg.logprobs += [float(x) for x in logprobs]
        # the template closes the assistant turn with the end token: ids the model did not produce are not its
        close = ([] if ids and ids[-1] == self.renderer.eos_id else [self.renderer.eos_id]) + list(
            self.renderer.turn_suffix_ids
        )
        seg.input_ids += close
        seg.model_token += [0] * len(close)
        seg.logprobs += [0.0] * len(close)
        answer = self.renderer.decode(ids)
        seg.text += answer + self.renderer.eos_text + self.renderer.turn_suffix
        self.turns += 1
        self._open = False
        return answer

    def abandon(self) -> None:
        """The open prompt gets no response (the episode ended first): what it added is dropped."""
        if not self._open:
            return
        seg = self.current
        assert seg is not None
        n, text = self._undo
        if n == 0:  # the request had started this segment
            self.segments.pop()
            self.divergences -= int(bool(self.segments))
        else:
            del seg.input_ids[n:], seg.model_token[n:], seg.logprobs[n:]
            seg.text = text
            seg.turns.pop()
            seg.prompt_ends.pop()
            self.reused_ids -= n
        self._open = False
