"""Token-in-token-out rendering of agent requests (`roll.agentic.chat_tokens`) with the tiny model's tokenizer:
prefix reuse, divergence detection, and that the mask marks exactly the model's ids."""

from __future__ import annotations

import pytest

from roll.agentic.chat_tokens import ChatRenderer, TokenStream, normalize_messages
from roll.models.tiny import build_byte_tokenizer

SYSTEM = {"role": "system", "content": "Reply with one ```bash block, or DONE."}
USER = {"role": "user", "content": "Make the test pass."}


@pytest.fixture(scope="module")
def renderer() -> ChatRenderer:
    return ChatRenderer(build_byte_tokenizer())


def _reply(renderer: ChatRenderer, text: str, eos: bool = True) -> list[int]:
    return renderer.encode(text) + ([renderer.eos_id] if eos else [])


def _answer(stream: TokenStream, ids: list[int]) -> str:
    return stream.response(ids, [-0.5] * len(ids))


def _model_ids(seg) -> list[int]:
    return [t for t, m in zip(seg.input_ids, seg.model_token, strict=True) if m]


def test_later_requests_reuse_the_prefix_and_tokenise_only_the_new_turn(renderer):
    stream = TokenStream(renderer)
    messages = [SYSTEM, USER]
    first = stream.prompt(messages)
    assert first.prompt_ids == renderer.encode(renderer.render(messages))
    assert (first.reused_ids, first.diverged) == (0, False)
    replies = [
        _reply(renderer, "```bash\ncat calc.py\n```"),
        _reply(renderer, "```bash\nsed -i s/-/+/ calc.py\n```"),
    ]
    for i, ids in enumerate(replies):
        held = len(stream.current.input_ids)
        text = _answer(stream, ids)
        assert text == renderer.decode(ids)  # what the agent gets back: the text, no end token
        messages = [
            *messages,
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"exit code {i}"},
        ]
        step = stream.prompt(messages)
        assert not step.diverged
        # everything before this request is reused: the previous prompt, the model's ids, the turn's closing
        assert step.reused_ids == held + len(ids) + len(renderer.turn_suffix_ids)
        assert step.new_ids == len(
            renderer.encode(f"<|im_start|>user\nexit code {i}<|im_end|>\n<|im_start|>assistant\n")
        )
        # with a byte tokenizer the reused stream equals a full re-tokenisation of the rendering
        assert step.prompt_ids == renderer.encode(renderer.render(messages))
    assert stream.divergences == 0 and len(stream.segments) == 1
    seg = stream.current
    assert _model_ids(seg) == replies[0] + replies[1]  # the mask marks exactly the model's ids
    gen_prompt = renderer.encode("<|im_start|>assistant\n")
    assert all(seg.input_ids[e - len(gen_prompt) : e] == gen_prompt for e in seg.prompt_ends)
    assert all(seg.model_token[e - 1] == 0 for e in seg.prompt_ends)  # prompts end before model ids start
    assert all(lp == -0.5 for lp, m in zip(seg.logprobs, seg.model_token, strict=True) if m)
    assert all(lp == 0.0 for lp, m in zip(seg.logprobs, seg.model_token, strict=True) if not m)


def test_sampled_ids_are_kept_even_when_not_the_canonical_tokenisation(renderer):
    """The model's own ids stay in the stream: a reply cut by length gets the end token (not the model's,
    mask 0), and the next request still extends the stream."""
    stream = TokenStream(renderer)
    messages = [USER]
    stream.prompt(messages)
    cut = renderer.encode("```bash\necho hi")  # no end token: max_new_tokens cut it
    text = _answer(stream, cut)
    seg = stream.current
    closing = seg.input_ids[-1 - len(renderer.turn_suffix_ids) :]
    assert closing == [renderer.eos_id, *renderer.turn_suffix_ids]
    assert seg.model_token[-len(closing) :] == [0] * len(closing)
    step = stream.prompt(
        [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": "go on"}]
    )
    assert not step.diverged and _model_ids(stream.current) == cut


def test_a_rewritten_history_is_a_divergence_and_starts_a_new_segment(renderer):
    stream = TokenStream(renderer)
    stream.prompt([SYSTEM, USER])
    ids = _reply(renderer, "```bash\nls -la\n```")
    text = _answer(stream, ids)
    first = stream.current
    held = list(first.input_ids)
    # the agent trims its history: the assistant turn is rewritten (a summary instead of the reply)
    edited = [
        SYSTEM,
        USER,
        {"role": "assistant", "content": "(listed files)"},
        {"role": "user", "content": "ok"},
    ]
    assert text != "(listed files)"
    step = stream.prompt(edited)
    assert step.diverged and step.reused_ids == 0 and stream.divergences == 1
    assert len(stream.segments) == 2 and stream.segments[0].input_ids == held  # the old segment is intact
    seg = stream.current
    assert seg.input_ids == renderer.encode(renderer.render(edited)) and not any(seg.model_token)
    ids2 = _reply(renderer, "DONE")
    _answer(stream, ids2)
    assert _model_ids(seg) == ids2  # the new segment trains only what the model generated in its context
    assert _model_ids(stream.segments[0]) == ids


def test_a_template_that_rewrites_content_is_caught_not_mis_masked():
    """A template that strips message content re-renders a reply with trailing spaces differently from
    what the model produced: that is detected as a divergence, never appended over the wrong ids."""
    tok = build_byte_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + (m['content'] | trim) + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    renderer = ChatRenderer(tok)
    stream = TokenStream(renderer)
    stream.prompt([USER])
    text = _answer(stream, _reply(renderer, "echo hi   "))
    history = [USER, {"role": "assistant", "content": text}, {"role": "user", "content": "next"}]
    step = stream.prompt(history)
    assert step.diverged and stream.divergences == 1
    text = _answer(stream, _reply(renderer, "no trailing space"))
    step = stream.prompt([*history, {"role": "assistant", "content": text}, {"role": "user", "content": "x"}])
    assert not step.diverged  # a reply the template writes back unchanged extends the stream


def test_abandon_drops_the_unanswered_request(renderer):
    stream = TokenStream(renderer)
    stream.prompt([USER])
    text = _answer(stream, _reply(renderer, "ls"))
    before = (list(stream.current.input_ids), stream.current.text, stream.reused_ids)
    stream.prompt([USER, {"role": "assistant", "content": text}, {"role": "user", "content": "out"}])
    stream.abandon()
    seg = stream.current
    assert (seg.input_ids, seg.text, stream.reused_ids) == before
    assert len(seg.prompt_ends) == len(seg.turns) == 1
    stream.prompt([{"role": "user", "content": "something else"}])  # diverges: a new segment
    stream.abandon()
    assert len(stream.segments) == 1 and stream.divergences == 0
    fresh = TokenStream(renderer)
    fresh.prompt([USER])
    fresh.abandon()
    assert fresh.segments == []


def test_protocol_misuse_and_bad_messages_raise(renderer):
    stream = TokenStream(renderer)
    with pytest.raises(RuntimeError, match="without a prompt"):
        stream.response([1], [0.0])
    stream.prompt([USER])
    with pytest.raises(RuntimeError, match="not answered"):
        stream.prompt([USER])
    with pytest.raises(ValueError, match="logprobs"):
        stream.response([1, 2], [0.0])
    with pytest.raises(ValueError, match="no messages"):
        normalize_messages(None)
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        normalize_messages([USER, {"content": "no role"}])


def test_openai_content_parts_and_null_content_render_as_text(renderer):
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert renderer.render(parts) == renderer.render([{"role": "user", "content": "ab"}])
    tool_call = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
    ]
    assert "<|im_start|>assistant\n<|im_end|>" in renderer.render(tool_call)
