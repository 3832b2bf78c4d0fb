"""breakdown: each step recomputed from the weights agrees with the model's own tensors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from explorer import ExplorerError, analyze, breakdown
from explorer.analysis.arithmetic import STEP_NAMES, STEPS, Breakdown, decode, layer_norm, softmax
from explorer.model.loading import LoadedModel

TEXT = "When Mary and John went to the store, John gave a drink to Mary.\nThe end"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def analysis(tiny):
    return analyze(tiny, TEXT)


def queries(n_pos: int) -> list[int]:
    return sorted({0, 1, n_pos // 2, n_pos - 2, n_pos - 1})


def assert_agrees(b: Breakdown) -> None:
    checked = {name: dev for name, dev in b.deviation.items() if dev is not None}
    assert {"q", "k", "v", "pattern", "context", "attn_out", "resid_mid", "block_out"} <= set(checked)
    for name, dev in checked.items():
        assert dev <= TOLERANCE, f"layer {b.layer} head {b.head} query {b.query}: {name} off by {dev}"


def test_every_head_and_layer_agrees_with_the_model(analysis):
    count = 0
    for layer in range(analysis.n_layer):
        for head in range(analysis.n_head):
            for query in queries(analysis.n_pos):
                assert_agrees(breakdown(analysis, layer, head, query))
                count += 1
    assert count == 2 * 4 * 5


def test_steps_fit_together(analysis):
    b = breakdown(analysis, 1, 2, 9)
    n = analysis.n_pos
    assert b.scaling == pytest.approx(1 / np.sqrt(8))
    np.testing.assert_allclose(b.ln_1, layer_norm(b.x.astype(np.float64), *_ln_1(analysis, 1)), atol=1e-5)
    np.testing.assert_allclose(b.scores, b.k @ b.q, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.scaled, b.scores * b.scaling, rtol=1e-6)
    np.testing.assert_array_equal(b.masked[:10], b.scaled[:10])
    assert (b.masked[10:] == -np.inf).all() and len(b.masked) == n
    assert np.isfinite(b.masked[:10]).all()
    assert b.pattern.sum() == pytest.approx(1.0, abs=1e-6)
    assert (b.pattern[10:] == 0).all() and (b.pattern[:10] > 0).all()
    np.testing.assert_allclose(b.pattern[:10], softmax(b.scaled[:10].astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(b.weighted, b.pattern[:, None] * b.v, atol=1e-6)
    np.testing.assert_allclose(b.context, b.pattern @ b.v, atol=1e-5)
    np.testing.assert_allclose(b.heads_concat[2 * 8 : 3 * 8], b.context, atol=1e-6)
    np.testing.assert_allclose(b.resid_mid, b.x + b.attn_out, atol=1e-5)
    np.testing.assert_allclose(b.x, analysis.resid[1, 9])
    assert b.tokens == analysis.tokens


def _ln_1(analysis, layer):
    w = analysis.weights
    return w.layers[layer].ln_1_w, w.layers[layer].ln_1_b, w.eps


def test_masked_is_minus_infinity_exactly_after_the_query(analysis):
    for query in queries(analysis.n_pos):
        b = breakdown(analysis, 0, 1, query)
        assert np.isfinite(b.masked[: query + 1]).all()
        assert (b.masked[query + 1 :] == -np.inf).all()
        assert b.pattern.sum() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(b.pattern, analysis.pattern[0, 1, query], atol=1e-6)


def test_table_is_the_attention_row_up_to_the_query(analysis):
    table = breakdown(analysis, 1, 0, 6).table()
    assert list(table.columns) == ["key", "token", "score", "scaled", "weight"]
    assert list(table["key"]) == list(range(7))
    assert list(table["token"]) == list(analysis.tokens[:7])
    assert table["weight"].sum() == pytest.approx(1.0, abs=1e-6)


def test_last_layer_logits_are_the_models_prediction(analysis):
    last = analysis.n_layer - 1
    for query in queries(analysis.n_pos):
        b = breakdown(analysis, last, 3, query)
        assert b.is_final
        assert b.deviation["logits"] is not None and b.deviation["logits"] <= TOLERANCE
        assert int(b.logits["token_id"].iloc[0]) == int(np.argmax(analysis.logits[query]))
        assert list(b.logits.columns) == ["token", "token_id", "logit", "prob"]
        assert len(b.logits) == 10
        assert (np.diff(b.logits["logit"].to_numpy()) <= 0).all()
        assert 0 < b.logits["prob"].sum() <= 1 + 1e-6


def test_earlier_layers_give_a_logit_lens_not_the_prediction(analysis):
    b = breakdown(analysis, 0, 0, 4, top_k=3)
    assert not b.is_final
    assert b.deviation["logits"] is None
    assert len(b.logits) == 3
    table, logits = decode(analysis, analysis.resid[1, 4], top_k=3)
    assert list(table["token_id"]) == list(b.logits["token_id"])
    assert int(table["token_id"].iloc[0]) == int(np.argmax(logits))


def test_step_names_are_unique_fields_of_breakdown():
    fields = {f.name for f in dataclasses.fields(Breakdown)}
    assert len(STEP_NAMES) == len(set(STEP_NAMES)) == len(STEPS) == 16
    assert set(STEP_NAMES) <= fields
    for step in STEPS:
        assert step.title and step.formula and step.explanation


def test_deviation_names_are_the_steps(analysis):
    assert tuple(breakdown(analysis, 0, 0, 0).deviation) == STEP_NAMES


@pytest.mark.parametrize(
    ("layer", "head", "query", "word"),
    [
        (-1, 0, 0, "layer"),
        (2, 0, 0, "layer"),
        (0, 4, 0, "head"),
        (0, -1, 0, "head"),
        (0, 0, 10_000, "query token"),
        (0, 0, -1, "query token"),
        (0.0, 0, 0, "layer"),
        (True, 0, 0, "layer"),
        ("1", 0, 0, "layer"),
        (0, None, 0, "head"),
        (0, 0, float("nan"), "query token"),
    ],
)
def test_out_of_range_indices_are_explained(analysis, layer, head, query, word):
    with pytest.raises(ExplorerError, match=f"The {word} must be a whole number from 0 to"):
        breakdown(analysis, layer, head, query)


def test_numpy_integers_are_accepted(analysis):
    b = breakdown(analysis, np.int64(1), np.int32(2), np.int64(3))
    assert (b.layer, b.head, b.query) == (1, 2, 3)
    assert type(b.layer) is int


# --------------------------------------------------------------------------- other GPT-2 configs


def variant(tiny, **config) -> LoadedModel:
    """A random in-memory GPT-2 with some non-default option, using the tiny model's tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=tiny.model.config.vocab_size, n_positions=32, n_embd=32, n_layer=3, n_head=2, **config
    )
    torch.manual_seed(1)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.set_attn_implementation("eager")
    return LoadedModel(model=model.eval(), tokenizer=tiny.tokenizer, name="variant", reason="test")


@pytest.mark.parametrize(
    "config",
    [
        {"scale_attn_by_inverse_layer_idx": True},
        {"activation_function": "gelu"},
        {"activation_function": "relu"},
        {"reorder_and_upcast_attn": True},
    ],
    ids=lambda c: next(iter(c)) + "=" + str(next(iter(c.values()))),
)
def test_variant_configs_agree_with_the_model(tiny, config):
    loaded = variant(tiny, **config)
    analysis = analyze(loaded, TEXT)
    for layer in range(3):
        for head in range(2):
            for query in (0, 7, analysis.n_pos - 1):
                assert_agrees(breakdown(analysis, layer, head, query))
    if config.get("scale_attn_by_inverse_layer_idx"):
        assert breakdown(analysis, 2, 0, 0).scaling == pytest.approx(1 / np.sqrt(16) / 3)


def test_unsupported_activation_is_an_explorer_error(tiny):
    loaded = variant(tiny, activation_function="silu")
    analysis = analyze(loaded, TEXT)
    with pytest.raises(ExplorerError, match="activation 'silu' is not supported"):
        breakdown(analysis, 0, 0, 3)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, "3", True, None])
def test_bad_top_k_is_an_explorer_error(analysis, top_k):
    with pytest.raises(ExplorerError, match="number of top tokens"):
        breakdown(analysis, 0, 0, 0, top_k=top_k)


def test_bundled_model_agrees_with_itself(bundled):
    analysis = analyze(bundled, "In the beginning God created the heaven and the earth. " * 12)
    for layer in range(analysis.n_layer):
        for head in range(analysis.n_head):
            for query in (0, analysis.n_pos // 2, analysis.n_pos - 1):
                assert_agrees(breakdown(analysis, layer, head, query))
