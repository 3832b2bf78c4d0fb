"""Head types: synthetic patterns of each type, plumbing on the tiny model, the bundled model's heads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer import analyze
from explorer.analysis.heads import (
    MIXED,
    PROSE,
    SCORE_COLUMNS,
    THRESHOLDS,
    head_scores,
    head_scores_from_patterns,
    label_heads,
    make_probes,
    probe_for,
)
from explorer.errors import ExplorerError
from explorer.figures import HEAD_SCORES, head_types_figure
from explorer.model.loading import bundled_path

SPAN = 10


def one_hot_rows(n: int, target) -> np.ndarray:
    """[query, key]: each query puts all its attention on target(q), or on key 0 when it has none."""
    pattern = np.zeros((n, n), dtype=np.float32)
    for q in range(n):
        k = target(q)
        pattern[q, k if k is not None and 0 <= k <= q else 0] = 1.0
    return pattern


def uniform_rows(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n), dtype=np.float32)) / np.arange(1, n + 1, dtype=np.float32)[:, None]


def synthetic(start: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Patterns [layer 1, head, query, key] for prose (20 tokens) and a repeated span, one head per type."""
    n_prose, n_rep = 20, start + 2 * SPAN

    def second_copy(offset: int):
        return lambda q: q - SPAN + offset if q >= start + SPAN else None

    heads = {
        "previous_token": (one_hot_rows(n_prose, lambda q: q - 1), one_hot_rows(n_rep, lambda q: q - 1)),
        # Rests on the sink in prose, and does induction where there is something to copy.
        "induction": (one_hot_rows(n_prose, lambda q: 0), one_hot_rows(n_rep, second_copy(1))),
        "duplicate_token": (one_hot_rows(n_prose, lambda q: q), one_hot_rows(n_rep, second_copy(0))),
        "first_token": (one_hot_rows(n_prose, lambda q: 0), one_hot_rows(n_rep, lambda q: 0)),
        MIXED: (uniform_rows(n_prose), uniform_rows(n_rep)),
    }
    # A head split between three things, none of them enough: 0.35 previous, 0.35 sink, 0.3 itself.
    split = 0.35 * one_hot_rows(n_prose, lambda q: q - 1) + 0.35 * one_hot_rows(n_prose, lambda q: 0)
    split += 0.3 * one_hot_rows(n_prose, lambda q: q)
    heads["split"] = (split, uniform_rows(n_rep))
    prose = np.stack([p for p, _ in heads.values()])[None]
    repeated = np.stack([r for _, r in heads.values()])[None]
    expected = [MIXED if name == "split" else name for name in heads]
    return prose, repeated, expected


@pytest.mark.parametrize("start", [0, 1])
def test_synthetic_heads_are_labelled_by_type(start):
    prose, repeated, expected = synthetic(start)
    np.testing.assert_allclose(prose.sum(-1), 1, atol=1e-6)
    df = head_scores_from_patterns(prose, repeated, SPAN, start)
    assert df["label"].tolist() == expected
    by = df.set_index(df["label"].where(df.index != 5, "split"))
    assert by.loc["previous_token", "previous_token"] == pytest.approx(1.0)
    assert by.loc["induction", "induction"] == pytest.approx(1.0)
    assert by.loc["duplicate_token", "duplicate_token"] == pytest.approx(1.0)
    assert by.loc["first_token", "first_token"] == pytest.approx(1.0)
    assert by.loc["first_token", "entropy"] == pytest.approx(0.0)
    assert by.loc[MIXED, "entropy"] == pytest.approx(1.0, abs=1e-6)  # normalised: uniform is 1
    assert by.loc["split", "previous_token"] == pytest.approx(0.35, abs=1e-6)
    # Uniform rows give key 0 a share 1/(q + 1): averaged over queries 1..19, far below the sink threshold.
    assert by.loc[MIXED, "first_token"] == pytest.approx(np.mean(1 / np.arange(2, 21)), abs=1e-6)
    # A one-hot head scores 0 on every type but its own (the sink head is the sink by fallback only).
    assert by.loc["previous_token", ["induction", "duplicate_token"]].max() == pytest.approx(0.0)
    assert by.loc["induction", ["previous_token", "duplicate_token"]].max() == pytest.approx(0.0)


def test_scores_average_over_batch_and_accept_unbatched():
    prose, repeated, _ = synthetic(0)  # [layer, head, query, key]
    other_prose, other_repeated = prose[:, ::-1], repeated[:, ::-1]  # the heads in another order
    both = head_scores_from_patterns(
        np.stack([prose, other_prose]), np.stack([repeated, other_repeated]), SPAN
    )
    one = head_scores_from_patterns(prose, repeated, SPAN)
    other = head_scores_from_patterns(other_prose, other_repeated, SPAN)
    cols = list(SCORE_COLUMNS)
    np.testing.assert_allclose(both[cols], (one[cols].to_numpy() + other[cols].to_numpy()) / 2, atol=1e-6)
    assert (one["label"].to_numpy()[::-1] == other["label"].to_numpy()).all()


def test_labels_follow_thresholds_and_strongest_wins():
    rows = pd.DataFrame(
        [
            {
                "previous_token": THRESHOLDS["previous_token"],
                "induction": 0,
                "duplicate_token": 0,
                "first_token": 0,
            },
            {"previous_token": 0.39, "induction": 0.29, "duplicate_token": 0.29, "first_token": 0.59},
            {"previous_token": 0.5, "induction": 0.6, "duplicate_token": 0.31, "first_token": 0.9},
            {"previous_token": 0.1, "induction": 0.1, "duplicate_token": 0.35, "first_token": 0.9},
            {"previous_token": 0.1, "induction": 0.1, "duplicate_token": 0.1, "first_token": 0.6},
        ]
    )
    assert label_heads(rows) == ["previous_token", MIXED, "induction", "duplicate_token", "first_token"]


def test_short_probes_are_refused():
    with pytest.raises(ExplorerError):
        head_scores_from_patterns(np.ones((1, 1, 2, 2)), np.ones((1, 1, 20, 20)), SPAN)
    with pytest.raises(ExplorerError):
        head_scores_from_patterns(np.ones((1, 1, 5, 5)), np.ones((1, 1, 19, 19)), SPAN)


@pytest.mark.parametrize("prepend_bos", [False, True])
def test_probes_repeat_a_random_span(tiny, prepend_bos):
    probes = make_probes(tiny, prepend_bos=prepend_bos, seed=3)
    start, span = probes.start, probes.span
    assert start == int(prepend_bos)
    assert span == min(50, (tiny.n_ctx - start) // 2)
    rep = probes.repeated
    assert rep.shape == (4, start + 2 * span)
    np.testing.assert_array_equal(rep[:, start : start + span], rep[:, start + span :])
    assert not np.isin(rep[:, start:], tiny.tokenizer.all_special_ids).any()
    assert len(np.unique(rep[:, start:])) > span  # the four sequences differ
    if prepend_bos:
        assert (rep[:, 0] == tiny.tokenizer.eos_token_id).all() and probes.prose[
            0, 0
        ] == tiny.tokenizer.eos_token_id
    assert probes.prose.shape[1] == min(tiny.n_ctx, start + len(tiny.tokenizer(PROSE)["input_ids"]))


def test_head_scores_on_tiny_model(tiny):
    df = head_scores(tiny, seed=1)
    assert list(df.columns) == ["layer", "head", *SCORE_COLUMNS, "label"]
    assert set(HEAD_SCORES) <= set(df.columns)
    assert len(df) == tiny.n_layer * tiny.n_head
    assert df[["layer", "head"]].drop_duplicates().shape[0] == len(df)
    scores = df[list(SCORE_COLUMNS)].to_numpy()
    assert (scores >= 0).all() and (scores <= 1 + 1e-6).all()
    assert df["label"].tolist() == label_heads(df)
    pd.testing.assert_frame_equal(df, head_scores(tiny, seed=1))  # repeatable
    assert not np.allclose(df["induction"], head_scores(tiny, seed=2)["induction"])
    fig = head_types_figure(df)
    assert np.asarray(fig.data[0].z).shape == (tiny.n_layer, tiny.n_head)


def test_an_analysis_of_the_prose_gives_the_same_prose_scores(tiny):
    """analyze()'s pattern and the probe's own forward pass agree, so the plumbing is right."""
    own = head_scores(tiny)
    given = head_scores(tiny, analysis=analyze(tiny, PROSE))
    cols = ["previous_token", "first_token", "entropy"]
    np.testing.assert_allclose(given[cols], own[cols], atol=1e-5)
    pd.testing.assert_frame_equal(
        given[["induction", "duplicate_token"]], own[["induction", "duplicate_token"]]
    )


def test_probe_for_each_type(tiny):
    prompt = probe_for("induction", tiny)
    ids = tiny.tokenizer(prompt)["input_ids"]
    half = len(ids) // 2
    assert ids[:half] == ids[half + 1 :] and len(ids) == 2 * half + 1  # two copies around the newline
    assert half >= 12
    assert probe_for("duplicate_token", tiny) == prompt
    for label in ("previous_token", "first_token", MIXED):
        text = probe_for(label, tiny)
        assert text in PROSE and len(tiny.tokenizer(text)["input_ids"]) >= 20
    with pytest.raises(ExplorerError):
        probe_for("successor", tiny)


def _card() -> dict:
    return json.loads((bundled_path() / "eval.json").read_text())["metrics"]


GOALS = {"previous_token": ("previous_token_head", 0.6), "induction": ("induction_head", 0.4)}  # issue #2


def _xfail_unless_card_meets_goal(card: dict, label: str) -> None:
    """A head type is checked once the bundled model's card reaches its goal for that type."""
    key, goal = GOALS[label]
    if card[key]["score"] < goal:
        pytest.xfail(f"the bundled demo model has no {label} head of score ≥ {goal} yet (see its model card)")


@pytest.mark.parametrize("label", GOALS)
def test_bundled_model_heads_match_its_card(bundled, label):
    card = _card()
    _xfail_unless_card_meets_goal(card, label)
    df = head_scores(bundled).set_index(["layer", "head"])
    key, _ = GOALS[label]
    best = card[key]
    assert df.loc[(best["layer"], best["head"]), "label"] == label
    # Our scores rank heads as the card's do (other probe texts, the same measure).
    card_scores = np.asarray(card[key.replace("_head", "_scores")]).ravel()
    assert np.corrcoef(df[label].to_numpy(), card_scores)[0, 1] > 0.9


def test_bundled_model_head_map_is_varied(bundled):
    """A useful map: several kinds of head, and no one type swallows most of them."""
    _xfail_unless_card_meets_goal(_card(), "induction")  # until then: previous-token heads and mixed
    counts = head_scores(bundled)["label"].value_counts()
    assert len(counts) >= 3
    assert counts.drop(MIXED, errors="ignore").max() <= 0.5 * counts.sum()


@pytest.mark.parametrize("label", GOALS)
def test_bundled_probes_light_up_their_heads(bundled, label):
    card = _card()
    _xfail_unless_card_meets_goal(card, label)
    layer, head = card[GOALS[label][0]]["layer"], card[GOALS[label][0]]["head"]
    a = analyze(bundled, probe_for(label, bundled))
    row, n = a.pattern[layer, head], a.n_pos
    if label == "previous_token":
        q = np.arange(2, n)
        mass = row[q, q - 1].mean()
    else:
        half = n // 2  # the second copy starts after the newline at `half`
        q = np.arange(half + 1, n)
        mass = row[q, q - half].mean()
    assert mass >= THRESHOLDS[label], (label, mass)


GPT2 = os.environ.get("EXPLORER_GPT2_PATH")


@pytest.mark.real_weights
@pytest.mark.skipif(
    not GPT2 or not Path(GPT2).is_dir(), reason="set EXPLORER_GPT2_PATH to a local gpt2 folder"
)
def test_gpt2_small_heads_match_the_literature():
    from explorer import load_model

    df = head_scores(load_model(GPT2, device="cpu"), prepend_bos=True).set_index(["layer", "head"])
    assert df.loc[(4, 11), "label"] == "previous_token"
    top_induction = set(df["induction"].nlargest(5).index)
    assert len(top_induction & {(5, 1), (5, 5), (6, 9), (7, 2), (7, 10)}) >= 3
    top_duplicate = set(df["duplicate_token"].nlargest(10).index)
    assert {(0, 1), (0, 10), (3, 0)} <= top_duplicate
