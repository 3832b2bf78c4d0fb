"""Any input to the Python API gives a valid result or an ExplorerError, never another exception."""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import explorer.model.loading as loading
from explorer import ExplorerError, GenerationSession, analyze, breakdown, load_model
from explorer.model.capture import clean_text, display_token


def fuzz(max_examples: int):
    """Few enough examples that the file runs in well under 40 s on the tiny model."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,  # no .hypothesis/ folder in the checkout; a failure prints its reproducing example
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


NASTY = [
    "\x00",
    "\ud800",
    "\udfff",
    "\ud83d\ude00",
    "🙂",
    "👩‍👩‍👧",
    "שלום עולם",
    "مرحبا بالعالم",
    "\u200b",
    "\u200f",
    "\u202e",
    "\ufeff",
    "e\u0301",
    "𝕏",
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "&amp;&lt;",
    "<|endoftext|>",
    "\x1b[31m",
    "\r\n",
    "\t",
    " ",
    "\n",
    "the",
    " cat",
    "Mary",
    "a" * 300,
]
texts = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),  # surrogates, controls
    st.lists(st.sampled_from(NASTY), max_size=12).map("".join),
)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from([[1], {"a": 1}, b"1", 1j, object()]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 0.0, 0.5, 1.0, 1e-300, 5e-324, 2**63, 2**64, "0.7", "nan"]),
)
anything = st.one_of(numbers, junk)
indices = st.one_of(st.integers(min_value=-3, max_value=70), anything)


def assert_readable(err: ExplorerError) -> None:
    message = str(err)
    assert message and len(message) < 400, message
    assert "Traceback" not in message and " object at 0x" not in message, message


def attempt(call, *args: Any, **kwargs: Any) -> Any:
    """The call's result, or None where it raised an ExplorerError with a readable message."""
    try:
        return call(*args, **kwargs)
    except ExplorerError as err:
        assert_readable(err)
        return None


def check_analysis(tiny, text: str, analysis) -> None:
    assert 1 <= analysis.n_pos <= tiny.n_ctx
    assert np.isfinite(analysis.pattern).all() and np.isfinite(analysis.logits).all()
    np.testing.assert_allclose(np.asarray(analysis.pattern).sum(-1), 1.0, atol=1e-5)
    assert "".join(analysis.text[a:b] for a, b in analysis.spans) == analysis.text
    if not analysis.truncated:
        assert analysis.text == clean_text(text)
    assert len(analysis.tokens) == analysis.n_pos and all(analysis.tokens)


@fuzz(60)
@given(
    text=texts,
    picks=st.lists(
        st.tuples(indices, indices, indices, st.one_of(st.integers(-2, 9000), anything)), max_size=3
    ),
)
def test_analyze_and_breakdown_accept_anything(tiny, text, picks):
    analysis = attempt(analyze, tiny, text)
    if analysis is None:
        assert not text.strip()  # the only text refused is blank text
        text = "The cat sat."
        analysis = analyze(tiny, text)  # a normal call still works
    check_analysis(tiny, text, analysis)
    for layer, head, query, top_k in picks:
        result = attempt(breakdown, analysis, layer, head, query, top_k=top_k)
        if result is not None:
            assert result.pattern.sum() == pytest.approx(1.0, abs=1e-5)
            assert all(d is None or d <= 1e-4 for d in result.deviation.values())
    assert breakdown(analysis, 1, 3, analysis.n_pos - 1).is_final


@fuzz(60)
@given(text=st.one_of(texts, junk, numbers), max_tokens=st.one_of(st.none(), indices))
def test_analyze_accepts_any_arguments(tiny, text, max_tokens):
    analysis = attempt(analyze, tiny, text, max_tokens=max_tokens)
    if analysis is not None:
        check_analysis(tiny, text, analysis)


ACTIONS = st.one_of(
    st.tuples(st.just("step")),
    st.tuples(st.just("force"), st.one_of(st.integers(-5, 9000), texts, anything)),
    st.tuples(st.just("rewind"), st.one_of(st.integers(-3, 80), anything)),
    st.tuples(st.just("configure"), anything, anything, anything, st.one_of(st.integers(), anything)),
    st.tuples(st.just("configure"), st.floats(0, 3), st.integers(0, 100), st.floats(0.01, 1), st.integers()),
)


def check_session(tiny, session: GenerationSession, prompt_ids: list[int]) -> None:
    assert len(session.ids) <= tiny.n_ctx
    assert session.ids[: len(prompt_ids)] == prompt_ids
    assert session._cache.get_seq_length() == len(session.ids)
    assert len(session.history) == len(session.generated)
    raw, warped = session.distributions()
    assert np.isfinite(raw).all() and np.isfinite(warped).all()
    assert raw.sum() == pytest.approx(1.0, abs=1e-4) and warped.sum() == pytest.approx(1.0, abs=1e-4)


@fuzz(40)
@given(
    prompt=texts,
    temperature=st.one_of(st.floats(0, 3), anything),
    top_k=st.one_of(st.integers(0, 100), anything),
    top_p=st.one_of(st.floats(0, 1), anything),
    seed=st.one_of(st.integers(), anything),
    actions=st.lists(ACTIONS, max_size=8),
)
def test_generation_session_accepts_anything(tiny, prompt, temperature, top_k, top_p, seed, actions):
    session = attempt(
        GenerationSession, tiny, prompt, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
    )
    if session is None:
        session = GenerationSession(tiny, "Once upon a time")  # a normal call still works
    prompt_ids = list(session.ids)
    check_session(tiny, session, prompt_ids)
    for name, *args in actions:
        result = attempt(getattr(session, name), *args)
        if name in ("step", "force") and result is not None:
            assert 0 <= result.token_id < tiny.model.config.vocab_size
            assert session.ids[-1] == result.token_id and result.position == len(session.ids) - 1
            assert result.pattern.shape == (tiny.n_layer, tiny.n_head, result.position + 1)
            np.testing.assert_allclose(result.pattern.sum(-1), 1.0, atol=1e-5)
            assert np.isfinite(result.entropy) and 0 <= result.prob <= 1 and 0 <= result.warped_prob <= 1
        check_session(tiny, session, prompt_ids)
    # Whatever happened, the session can still be driven normally.
    session.configure(temperature=1.0, top_k=0, top_p=1.0, seed=0)
    session.rewind(1)
    if not session.finished:
        session.step()
    check_session(tiny, session, prompt_ids)


@fuzz(40)
@given(
    source=st.one_of(
        texts, junk, numbers, st.sampled_from(["/", ".", "..", "~", "gpt2", "x" * 5000, "a/b/c"])
    ),
    device=st.one_of(st.none(), st.sampled_from(["cpu", "auto", "gpu", "", "cuda:99"]), st.text(max_size=8)),
)
@example(source="x" * 5000, device="cpu")
@example(source="/" + "x" * 5000, device="cpu")
@example(source="a\x00b", device="cpu")
@example(source="\ud800", device="cpu")
@example(source=".", device="gpu")
def test_load_model_accepts_anything(tiny_path, monkeypatch, source, device):
    monkeypatch.setattr(loading, "_cached_hub_folder", lambda repo_id: None)  # never a real hub model
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=1.5: False)  # never the network
    loaded = attempt(load_model, source, device=device)
    if loaded is not None:
        assert loaded.model.config._attn_implementation == "eager"
    assert loading.resolve(str(tiny_path))[1] == tiny_path  # a normal call still works


@fuzz(200)
@given(text=st.text(st.characters(codec="utf-8"), min_size=1, max_size=20))
def test_display_token_hides_nothing(text):
    shown = display_token(text.encode("utf-8"))
    assert shown and not any(ch in shown for ch in " \n\t\r")
    assert all(unicodedata.category(ch) not in ("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn") for ch in shown)
