"""Sampling: the defaults, the draw against model.generate's, float64 probabilities, bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import ExplorerError, GenerationSession
from explorer.model.generation import DEFAULT_SAMPLING, Sampling

PROMPT = "When Mary and John went to the store, John gave a drink to"


def generate_sampled(loaded, ids: list[int], seed: int, n: int, **settings):
    """model.generate with do_sample=True after torch.manual_seed(seed): (new ids, each step's
    distribution, the softmax in float64 of its processed scores)."""
    ids_t = torch.tensor([ids])
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = loaded.model.generate(
            ids_t,
            attention_mask=torch.ones_like(ids_t),
            pad_token_id=loaded.tokenizer.eos_token_id,
            do_sample=True,
            max_new_tokens=n,
            output_scores=True,
            return_dict_in_generate=True,
            **settings,
        )
    new = out.sequences[0, len(ids) :].tolist()
    return new, [torch.softmax(s[0].double(), -1).numpy() for s in out.scores]


def run(session: GenerationSession, n: int) -> tuple[list[int], list[np.ndarray]]:
    """n steps (fewer if generation stops): the tokens and the warped distribution of each."""
    tokens, warped = [], []
    for _ in range(n):
        if session.finished:
            break
        warped.append(session.distributions()[1])
        tokens.append(session.step().token_id)
    return tokens, warped


# --------------------------------------------------------------------------- the defaults


def test_defaults_are_generates_own(tiny):
    """A default session samples what generate(do_sample=True) does with no settings at all."""
    assert Sampling(temperature=1.0, top_k=50, top_p=1.0, seed=0, greedy=False) == DEFAULT_SAMPLING
    session = GenerationSession(tiny, PROMPT)
    assert session.sampling == DEFAULT_SAMPLING
    theirs, their_dists = generate_sampled(tiny, session.ids, DEFAULT_SAMPLING.seed, 20)
    ours, our_dists = run(session, 20)
    assert ours == theirs
    assert all((d > 0).sum() == 50 for d in our_dists)  # top-k 50 is on
    for mine, generates in zip(our_dists, their_dists, strict=True):
        np.testing.assert_allclose(mine, generates, atol=1e-6)


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [
        (1.0, 0, 1.0),
        (1.0, 50, 1.0),
        (0.7, 0, 1.0),
        (1.0, 5, 1.0),
        (1.3, 0, 0.8),
        (0.8, 20, 0.9),
        (2.0, 3, 0.5),
        (0.5, 0, 0.3),
    ],
)
@pytest.mark.parametrize("seed", [0, 11])
def test_every_step_samples_generates_distribution_and_token(tiny, temperature, top_k, top_p, seed):
    settings = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    session = GenerationSession(tiny, PROMPT, seed=seed, **settings)
    theirs, their_dists = generate_sampled(tiny, session.ids, seed, 24, **settings)
    ours, our_dists = run(session, 24)
    assert ours == theirs  # the same generator, seeded the same, drawing in the same order
    for mine, generates in zip(our_dists, their_dists, strict=True):
        np.testing.assert_allclose(mine, generates, atol=1e-6)
        assert ((mine > 0) == (generates > 0)).all()  # the same tokens kept


def test_bundled_model_samples_generates_tokens_with_the_defaults(bundled):
    session = GenerationSession(bundled, PROMPT, seed=3)
    theirs, their_dists = generate_sampled(bundled, session.ids, 3, 100)
    ours, our_dists = run(session, 100)
    assert ours == theirs
    np.testing.assert_allclose(our_dists[-1], their_dists[len(ours) - 1], atol=1e-6)


def test_different_seeds_draw_differently(tiny):
    assert (
        run(GenerationSession(tiny, PROMPT, seed=1), 10)[0]
        != run(GenerationSession(tiny, PROMPT, seed=2), 10)[0]
    )


# --------------------------------------------------------------------------- the random stream


def test_configuring_the_same_settings_again_keeps_the_stream(tiny):
    """The page configures the session before every step: that must not restart the draws."""
    plain = GenerationSession(tiny, PROMPT, seed=4)
    expected = run(plain, 8)[0]
    session = GenerationSession(tiny, PROMPT, seed=4)
    tokens = []
    for _ in range(8):
        session.configure(seed=4)
        tokens.append(session.step().token_id)
    assert tokens == expected


def test_forced_and_greedy_steps_draw_nothing(tiny):
    """As in generate, only a sampled step uses the generator."""
    one_draw = GenerationSession(tiny, PROMPT, seed=6)
    one_draw.step()
    session = GenerationSession(tiny, PROMPT, seed=6)
    session.step()
    session.force(" the")
    session.configure(greedy=True, seed=6)
    session.step()
    assert session._rng.get_state().equal(one_draw._rng.get_state())


def test_rewind_restores_the_stream_and_a_new_seed_starts_afresh(tiny):
    session = GenerationSession(tiny, PROMPT, seed=9)
    first = run(session, 6)[0]
    session.rewind(4)
    assert run(session, 4)[0] == first[2:]
    session.configure(seed=10)
    fresh = GenerationSession(tiny, PROMPT, seed=10)
    fresh_state = fresh._rng.get_state()
    assert session._rng.get_state().equal(fresh_state)
    session.rewind(3)  # steps drawn with seed 9: seed 10's stream starts again
    assert session._rng.get_state().equal(fresh_state)
    assert session.seed == 10


# --------------------------------------------------------------------------- float64


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"top_k": 0},
        {"temperature": 0.6, "top_k": 0},
        {"top_p": 0.9},
        {"temperature": 1.4, "top_k": 7, "top_p": 0.7},
    ],
)
def test_shown_probabilities_are_float64_and_sum_to_one(bundled, settings):
    session = GenerationSession(bundled, PROMPT, seed=2, **settings)
    for _ in range(5):
        raw, warped = session.distributions()
        assert raw.dtype == warped.dtype == np.float64
        assert abs(raw.sum() - 1) < 1e-9 and abs(warped.sum() - 1) < 1e-9
        with torch.inference_mode():
            logits = bundled.model(torch.tensor([session.ids])).logits[0, -1].double().numpy()
        exact = np.exp(logits - logits.max())
        np.testing.assert_allclose(raw, exact / exact.sum(), rtol=1e-4, atol=1e-12)
        result = session.step()
        assert result.prob == raw[result.token_id] and result.warped_prob == warped[result.token_id]
        assert result.raw_top["prob"].dtype == result.warped_top["prob"].dtype == np.float64
        assert result.raw_top["prob"].iloc[0] == raw.max()
        item = session.history[-1]
        assert (item.prob, item.warped_prob, item.entropy) == (
            result.prob,
            result.warped_prob,
            result.entropy,
        )


def test_float64_where_a_float32_softmax_is_off(bundled):
    """The issue's case: a confident step (' to' at p = 0.98) over 8,192 tokens."""
    session = GenerationSession(bundled, PROMPT + " Laura, Alice handed a bag", greedy=True)
    raw, _ = session.distributions()
    float32 = torch.softmax(session._logits, -1).numpy().astype(np.float64)
    assert raw.max() > 0.95
    assert abs(float32.max() - raw.max()) > 1e-7 and abs(float32.sum() - 1) > 1e-7  # 1.2e-6 both
    assert abs(raw.sum() - 1) < 1e-12


def test_greedy_warped_distribution_is_one_token(bundled):
    raw, warped = GenerationSession(bundled, PROMPT, greedy=True).distributions()
    assert warped.dtype == np.float64 and warped.sum() == 1.0 and warped[np.argmax(raw)] == 1.0


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"temperature": -0.5}, r"Temperature must be a number ≥ 0 \(0 means greedy\); got -0\.5\."),
        ({"temperature": float("nan")}, "Temperature .*; got nan"),
        ({"temperature": "warm"}, "Temperature .*; got 'warm'"),
        ({"top_p": 0}, r"Top-p must be a number greater than 0 and at most 1 \(1 means off\); got 0\."),
        ({"top_p": 1.01}, "Top-p .*; got 1.01"),
        ({"top_p": float("nan")}, "Top-p .*; got nan"),
        ({"top_k": -1}, r"Top-k must be a whole number ≥ 0 \(0 means off\); got -1\."),
        ({"top_k": 2.5}, "Top-k must be a whole number.*; got 2.5"),
        ({"top_k": True}, "Top-k must be a whole number"),
        ({"top_k": "ten"}, "Top-k .*; got 'ten'"),
        ({"seed": 1.5}, r"The seed must be a whole number; got 1\.5\."),
        ({"seed": float("nan")}, "The seed must be a whole number; got nan"),
        ({"seed": "lucky"}, "The seed .*; got 'lucky'"),
    ],
)
def test_bad_settings_say_what_is_wrong_and_keep_the_previous_ones(tiny, settings, message):
    good = {"temperature": 0.9, "top_k": 7, "top_p": 0.8, "seed": 5}
    with pytest.raises(ExplorerError, match=message) as refused:
        GenerationSession(tiny, PROMPT, **{**good, **settings})
    assert "previous" not in str(refused.value)  # a new session has none
    session = GenerationSession(tiny, PROMPT, **good)
    untouched = GenerationSession(tiny, PROMPT, **good)
    before = session.sampling
    with pytest.raises(ExplorerError, match=message + ".* The previous settings stay."):
        session.configure(**{**good, **settings})
    assert session.sampling == before
    assert run(session, 5)[0] == run(untouched, 5)[0]  # nor was the random stream touched


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"top_k": 4.0, "seed": "12"}, {"top_k": 4, "seed": 12}),
        ({"top_k": "3", "seed": -2.0}, {"top_k": 3, "seed": -2}),
        ({"top_k": np.int64(9), "seed": np.int32(5)}, {"top_k": 9, "seed": 5}),
        ({"seed": None}, {"seed": 0}),
        ({"temperature": 0}, {"greedy": True}),
    ],
)
def test_whole_numbers_in_any_form_are_taken(tiny, settings, expected):
    sampling = GenerationSession(tiny, PROMPT, **settings).sampling
    assert {name: getattr(sampling, name) for name in expected} == expected
