"""analyze: every captured tensor equals the model's own, checked without hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import ExplorerError, analyze
from explorer.model.capture import clean_text, display_token, token_bytes

TEXT = "When Mary and John went to the store,\nJohn gave a drink to\tMary. 🙂 Ünïcode"


@pytest.fixture(scope="module")
def analysis(tiny):
    return analyze(tiny, TEXT)


@pytest.fixture(scope="module")
def reference(tiny, analysis):
    """The model's own outputs for the same ids, from one plain forward pass (no hooks)."""
    ids = torch.from_numpy(analysis.token_ids)[None]
    with torch.inference_mode():
        return tiny.model(ids, output_attentions=True, output_hidden_states=True, use_cache=False)


def test_shapes_and_dtypes(tiny, analysis):
    n_layer, n_head, t, d_head, d_model = 2, 4, analysis.n_pos, 8, 32
    assert t == len(tiny.tokenizer(TEXT)["input_ids"]) > 10
    assert analysis.pattern.shape == (n_layer, n_head, t, t)
    for name in ("q", "k", "v", "context"):
        assert getattr(analysis, name).shape == (n_layer, n_head, t, d_head), name
    assert analysis.attn_out.shape == analysis.resid_mid.shape == (n_layer, t, d_model)
    assert analysis.resid.shape == (n_layer + 1, t, d_model)
    assert analysis.logits.shape == (t, tiny.model.config.vocab_size)
    for name in ("pattern", "q", "k", "v", "context", "attn_out", "resid_mid", "resid", "logits"):
        assert getattr(analysis, name).dtype == np.float32, name
    assert analysis.token_ids.dtype == np.int64
    assert len(analysis.tokens) == len(analysis.spans) == t
    assert (analysis.n_layer, analysis.n_head, analysis.truncated) == (n_layer, n_head, 0)
    assert analysis.model_name == tiny.name


def test_pattern_rows_sum_to_one_and_nothing_attends_ahead(analysis):
    pattern = np.asarray(analysis.pattern)  # the square, from the stored triangle
    np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-5)
    assert (pattern >= 0).all()
    ahead = np.triu(np.ones(pattern.shape[-2:], dtype=bool), k=1)
    assert (pattern[..., ahead] == 0.0).all()
    assert (pattern[:, :, 0, 0] == 1.0).all()


def test_pattern_is_the_models_attention_output(analysis, reference):
    theirs = torch.stack([a[0] for a in reference.attentions]).numpy()
    assert np.abs(analysis.pattern - theirs).max() <= 1e-6
    # The captured pattern is not uniform: a bug that loses it would show.
    assert analysis.pattern[..., 1:, :].std() > 0.05


def test_q_k_v_are_the_real_c_attn_output(tiny, analysis, reference):
    t, n_head, d_model = analysis.n_pos, tiny.n_head, tiny.model.config.n_embd
    d_head = d_model // n_head
    for layer, block in enumerate(tiny.model.transformer.h):
        with torch.inference_mode():
            qkv = block.attn.c_attn(block.ln_1(reference.hidden_states[layer][0]))  # [pos, 3 * d_model]
        for part, name in zip(qkv.split(d_model, dim=-1), ("q", "k", "v"), strict=True):
            expected = part.reshape(t, n_head, d_head).transpose(0, 1).numpy()  # [head, pos, d_head]
            np.testing.assert_allclose(getattr(analysis, name)[layer], expected, atol=1e-6, err_msg=name)


def test_context_is_pattern_times_values(analysis):
    np.testing.assert_allclose(analysis.context, analysis.pattern @ analysis.v, atol=1e-5)


def test_attention_output_and_residual_add(tiny, analysis):
    for layer, block in enumerate(tiny.model.transformer.h):
        merged = torch.from_numpy(analysis.context[layer]).transpose(0, 1).reshape(analysis.n_pos, -1)
        with torch.inference_mode():
            attn_out = block.attn.c_proj(merged).numpy()
        np.testing.assert_allclose(analysis.attn_out[layer], attn_out, atol=1e-5)
        np.testing.assert_allclose(analysis.resid_mid[layer], analysis.resid[layer] + attn_out, atol=1e-5)


def test_residual_stream_is_the_hidden_states(tiny, analysis, reference):
    hidden = [h[0].numpy() for h in reference.hidden_states]
    assert len(hidden) == analysis.resid.shape[0] == tiny.n_layer + 1
    for layer in range(tiny.n_layer):
        np.testing.assert_allclose(analysis.resid[layer], hidden[layer], atol=1e-6)
    # Hugging Face applies ln_f to its last hidden state; resid[-1] is the block's output before it.
    with torch.inference_mode():
        normed = tiny.model.transformer.ln_f(torch.from_numpy(analysis.resid[-1])).numpy()
    np.testing.assert_allclose(normed, hidden[-1], atol=1e-5)
    assert np.abs(analysis.resid[-1] - hidden[-1]).max() > 1e-2


def test_logits_are_the_models(analysis, reference):
    assert np.abs(analysis.logits - reference.logits[0].numpy()).max() <= 1e-5


def test_only_the_last_positions_logits_are_kept_and_the_rest_decode_on_demand(analysis, reference):
    theirs = reference.logits[0].numpy()
    np.testing.assert_array_equal(analysis.last_logits, analysis.logits_at(-1))
    assert np.abs(analysis.last_logits - theirs[-1]).max() <= 1e-5
    for pos in (0, analysis.n_pos // 2, analysis.n_pos - 2):
        assert np.abs(analysis.logits_at(pos) - theirs[pos]).max() <= 1e-5
    big = [name for name, value in vars(analysis).items() if getattr(value, "size", 0) >= theirs.size]
    assert big == ["pattern"] or not big  # no [pos, vocab] array is stored
    with pytest.raises(IndexError):
        analysis.logits_at(analysis.n_pos)


def test_hooks_are_removed_afterwards_even_when_the_forward_pass_fails(tiny, monkeypatch):
    def hooks() -> list[tuple[str, list, list]]:
        return [
            (name, list(m._forward_hooks), list(m._forward_pre_hooks))
            for name, m in tiny.model.named_modules()
        ]

    before = hooks()  # transformers keeps hooks of its own (output capture): those stay
    analyze(tiny, TEXT)
    assert hooks() == before

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(tiny.model.transformer.h[1].mlp, "forward", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        analyze(tiny, TEXT)
    assert hooks() == before


def test_analysis_is_deterministic(tiny, analysis):
    again = analyze(tiny, TEXT)
    np.testing.assert_array_equal(again.pattern, analysis.pattern)
    np.testing.assert_array_equal(again.resid, analysis.resid)


# --------------------------------------------------------------------------- tokens and spans


def test_spans_cover_the_text_exactly(analysis):
    assert "".join(analysis.text[a:b] for a, b in analysis.spans) == analysis.text == TEXT
    assert analysis.spans[0][0] == 0 and analysis.spans[-1][1] == len(TEXT)
    for (_, end), (start, _) in zip(analysis.spans, analysis.spans[1:], strict=False):
        assert end == start


def test_each_span_is_its_tokens_bytes(tiny, analysis):
    for token_id, (start, end) in zip(analysis.token_ids, analysis.spans, strict=True):
        raw = token_bytes(tiny.tokenizer, int(token_id))
        try:
            piece = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a part of a multi-byte character: its span may be empty or the whole character
        assert analysis.text[start:end] == piece


def test_tokens_show_whitespace(analysis):
    assert "␣John" in analysis.tokens
    assert any(token.startswith("↵") or token == "↵" for token in analysis.tokens)
    assert any("⇥" in token for token in analysis.tokens)
    assert not any(ch in token for token in analysis.tokens for ch in " \n\t")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b" the", "␣the"),
        (b"\n\n", "↵↵"),
        (b"\t", "⇥"),
        (b"\r\n", "␍↵"),
        (b"\x00", "\\u0000"),
        (b"\x1b[", "\\u001b["),
        ("\u200b".encode(), "\\u200b"),
        ("\u202e".encode(), "\\u202e"),
        ("\u2066".encode(), "\\u2066"),
        ("\ufeff".encode(), "\\ufeff"),
        ("\u00ad".encode(), "\\u00ad"),
        ("a\u00a0b".encode(), "a\\u00a0b"),
        ("\u2028".encode(), "\\u2028"),
        ("\U000f0000".encode(), "\\U000f0000"),
        (b"\xf0\x9f", "\\xf0\\x9f"),
        ("é🙂".encode(), "é🙂"),
        (b"", "∅"),
    ],
)
def test_display_token(raw, shown):
    assert display_token(raw) == shown


def test_clean_text_joins_pairs_and_replaces_lone_surrogates():
    assert clean_text("a\ud83d\ude00b") == "a😀b"
    assert clean_text("x\ud800y\udfff") == "x\ufffdy\ufffd"
    assert clean_text("plain ✓") == "plain ✓"


def test_lone_surrogates_are_analyzed_as_replacement_characters(tiny):
    analysis = analyze(tiny, "left \ud800 right")
    assert analysis.text == "left \ufffd right"
    assert "".join(analysis.text[a:b] for a, b in analysis.spans) == analysis.text


def test_special_token_text_keeps_its_span(tiny):
    analysis = analyze(tiny, "<|endoftext|>Hello")
    assert analysis.token_ids[0] == tiny.tokenizer.eos_token_id
    assert analysis.spans[0] == (0, len("<|endoftext|>"))


# --------------------------------------------------------------------------- limits


def test_text_longer_than_the_context_is_cut(tiny):
    text = "the cat sat on the mat and " * 40
    n_tokens = len(tiny.tokenizer(text)["input_ids"])
    analysis = analyze(tiny, text)
    assert analysis.n_pos == tiny.n_ctx == 64
    assert analysis.truncated == n_tokens - 64 > 0
    assert text.startswith(analysis.text)
    assert "".join(analysis.text[a:b] for a, b in analysis.spans) == analysis.text
    np.testing.assert_allclose(np.asarray(analysis.pattern).sum(-1), 1.0, atol=1e-5)


def test_max_tokens_cuts_further(tiny):
    analysis = analyze(tiny, TEXT, max_tokens=5)
    assert analysis.n_pos == 5
    assert analysis.truncated == len(tiny.tokenizer(TEXT)["input_ids"]) - 5
    full = analyze(tiny, TEXT)
    # Causal: the first five positions do not depend on what follows.
    np.testing.assert_allclose(analysis.pattern, full.pattern[:, :, :5, :5], atol=1e-6)


@pytest.mark.parametrize("max_tokens", [-1, 2.5, "3", True])
def test_bad_max_tokens_is_an_explorer_error(tiny, max_tokens):
    with pytest.raises(ExplorerError, match="token limit"):
        analyze(tiny, TEXT, max_tokens=max_tokens)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n", None, 42, b"bytes"])
def test_empty_or_non_text_prompt_is_an_explorer_error(tiny, text):
    with pytest.raises(ExplorerError, match="empty"):
        analyze(tiny, text)


def test_bundled_model_long_text(bundled):
    text = "When Mary and John went to the store, John gave a drink to Mary. " * 120
    analysis = analyze(bundled, text)
    assert analysis.n_pos == bundled.n_ctx == 1024 and analysis.truncated > 0
    with torch.inference_mode():
        out = bundled.model(torch.from_numpy(analysis.token_ids)[None], output_attentions=True)
    assert np.abs(analysis.pattern - torch.stack([a[0] for a in out.attentions]).numpy()).max() <= 1e-6
    assert np.abs(analysis.logits - out.logits[0].numpy()).max() <= 1e-4


def _squares_alive(n_head: int, n_pos: int) -> int:
    """Live torch tensors shaped like one layer's attention weights [1, head, query, key]."""
    import gc

    shape = (1, n_head, n_pos, n_pos)
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor) and tuple(o.shape) == shape)


@pytest.mark.parametrize("keep_bytes", [None, 0])
def test_the_attention_weights_are_freed_before_the_mlp_runs(tiny, keep_bytes):
    # The block holds what its attn returns until it ends; analyze packs the weights and hands
    # the block its output without them, so the square is gone before the MLP's temporaries.
    seen: list[int] = []
    n_pos = len(tiny.tokenizer(TEXT)["input_ids"])
    handle = tiny.model.transformer.h[1].mlp.register_forward_pre_hook(
        lambda m, a: seen.append(_squares_alive(tiny.n_head, n_pos))
    )
    try:
        kwargs = {} if keep_bytes is None else {"keep_bytes": keep_bytes}
        before = _squares_alive(tiny.n_head, n_pos)  # other tests' fixtures hold some
        a = analyze(tiny, TEXT, **kwargs)
        assert seen == [before]
        with torch.inference_mode():  # without analyze, the block keeps them: what the hook stops
            tiny.model(torch.from_numpy(a.token_ids)[None], use_cache=False)
        assert seen[1] >= before + 1
    finally:
        handle.remove()


@pytest.mark.parametrize("keep_bytes", [None, 0])
def test_a_forward_pass_on_another_thread_during_analyze_is_left_alone(tiny, reference, keep_bytes):
    # The model is shared: a generation step on another thread runs analyze's hooks too. They
    # neither write into the analysis nor take that pass's attention weights away.
    import threading

    seen: dict[str, object] = {}

    def other_pass(module, args):
        if "out" in seen:
            return
        seen["out"] = None

        def run():
            with torch.inference_mode():
                seen["out"] = tiny.model(ids, output_attentions=True, use_cache=False)

        worker = threading.Thread(target=run)
        worker.start()
        worker.join()

    a0 = analyze(tiny, TEXT)
    ids = torch.from_numpy(a0.token_ids[:9])[None]  # another, shorter prompt
    handle = tiny.model.transformer.h[0].mlp.register_forward_pre_hook(other_pass)
    try:
        kwargs = {} if keep_bytes is None else {"keep_bytes": keep_bytes}
        a = analyze(tiny, TEXT, **kwargs)
    finally:
        handle.remove()
    out = seen["out"]
    assert out is not None and all(w is not None and w.shape[-1] == 9 for w in out.attentions)
    theirs = torch.stack([w[0] for w in reference.attentions]).numpy()
    assert np.abs(np.asarray(a.pattern) - theirs).max() <= (1e-6 if keep_bytes is None else 0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(a.resid, a0.resid)
