"""Logit lens: the last layer is the model's own prediction; every layer matches arithmetic.decode."""

from __future__ import annotations

import numpy as np
import pytest

import explorer.analysis.lens as lens_module
from explorer import analyze
from explorer.analysis.arithmetic import decode, softmax
from explorer.analysis.lens import logit_lens
from explorer.errors import ExplorerError
from explorer.figures import logit_lens_figure
from explorer.model.capture import display_tokens

TEXT = "The keeper climbed the stairs, checked the lamp, and wrote a few lines in a book."


@pytest.fixture(scope="module")
def analysis(tiny):
    return analyze(tiny, TEXT)


@pytest.fixture(scope="module")
def lens(analysis):
    return logit_lens(analysis, top_k=5)


def test_last_layer_is_the_models_prediction(analysis, lens):
    probs = softmax(analysis.logits.astype(np.float64))  # [pos, vocab]
    expected_ids = np.argsort(-probs, axis=-1)[:, :5]
    np.testing.assert_array_equal(lens.top_ids[-1], expected_ids)
    np.testing.assert_allclose(lens.top_probs[-1], np.take_along_axis(probs, expected_ids, -1), atol=1e-5)
    following = analysis.token_ids[1:]
    np.testing.assert_allclose(
        lens.next_probs[-1, :-1], probs[np.arange(len(following)), following], atol=1e-5
    )
    assert np.isnan(lens.next_probs[:, -1]).all()


def test_every_layer_matches_decode(analysis, lens):
    n_rows, n_pos = analysis.resid.shape[:2]
    assert lens.top_ids.shape == lens.top_probs.shape == lens.top_tokens.shape == (n_rows, n_pos, 5)
    assert lens.top_probs.dtype == np.float32 and lens.top_ids.dtype == np.int64
    assert lens.layer_names == ("embed", *(f"L{i}" for i in range(analysis.n_layer)))
    for row in range(n_rows):
        for pos in (0, n_pos // 2, n_pos - 1):
            table, _ = decode(analysis, analysis.resid[row, pos], top_k=5)
            np.testing.assert_array_equal(lens.top_ids[row, pos], table["token_id"])
            np.testing.assert_allclose(lens.top_probs[row, pos], table["prob"], atol=1e-5)
            assert tuple(lens.top_tokens[row, pos]) == tuple(table["token"])
    assert (np.diff(lens.top_probs, axis=-1) <= 0).all()
    # The embedding row only knows the current token, so its guesses differ from the last layer's.
    assert (lens.top_ids[0, :, 0] != lens.top_ids[-1, :, 0]).any()


def test_chunked_unembedding_gives_the_same_result(analysis, lens, monkeypatch):
    monkeypatch.setattr(lens_module, "CHUNK_LOGITS", 3 * analysis.logits.shape[-1] + 1)  # 3 rows a chunk
    small = logit_lens(analysis, top_k=5)
    np.testing.assert_array_equal(small.top_ids, lens.top_ids)
    np.testing.assert_allclose(small.top_probs, lens.top_probs, atol=1e-6)
    np.testing.assert_allclose(small.next_probs, lens.next_probs, atol=1e-6, equal_nan=True)


def test_progress_is_reported_chunk_by_chunk_up_to_done(analysis, lens, monkeypatch):
    monkeypatch.setattr(lens_module, "CHUNK_LOGITS", 3 * analysis.logits.shape[-1] + 1)
    heard: list[tuple[float, str]] = []
    reported = logit_lens(analysis, top_k=5, progress=lambda f, m: heard.append((f, m)))
    rows = analysis.resid.shape[0] * analysis.resid.shape[1]
    assert len(heard) == -(-rows // 3) and heard[-1] == (
        1.0,
        f"Logit lens: {rows} of {rows} positions × layers decoded …",
    )
    assert [f for f, _ in heard] == sorted(f for f, _ in heard)
    np.testing.assert_array_equal(reported.top_ids, lens.top_ids)


def test_table_at_one_position(analysis, lens):
    pos = 4
    df = lens.at(pos)
    n_rows = analysis.n_layer + 1
    assert list(df.columns) == ["layer", "rank", "token", "token_id", "prob"]
    assert len(df) == n_rows * 5
    assert df["layer"].tolist() == [name for name in lens.layer_names for _ in range(5)]
    np.testing.assert_array_equal(df["token_id"].to_numpy().reshape(n_rows, 5), lens.top_ids[:, pos])
    assert df["token"].tolist() == list(display_tokens(analysis.tokenizer, df["token_id"]))
    with pytest.raises(ExplorerError):
        lens.at(analysis.n_pos)


def test_feeds_the_figure(analysis, lens):
    fig = logit_lens_figure(lens.top_tokens[:, :, 0].tolist(), lens.top_probs[:, :, 0], list(lens.tokens))
    z = np.asarray(fig.data[0].z)
    assert z.shape == (analysis.n_layer + 1, analysis.n_pos)
    np.testing.assert_array_equal(z, lens.top_probs[:, :, 0])
    assert logit_lens(analysis, top_k=1).top_ids.shape[-1] == 1
