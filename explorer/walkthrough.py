"""The guided walk-through: each stage of the attention arithmetic explained beside its live numbers.

    walkthrough_html(analysis, bd, lang, sampling)  the walk-through for one layer, head and query

The words are data, one file per language (explorer/texts/en.json, zh.json; see explorer.i18n); the stages' order,
formulas and the Breakdown steps they explain are here, once. Each live sentence has
placeholders that `live_values` fills from the Breakdown and the Analysis; a sentence whose
placeholders have no value (no later token to compare with, say) is left out in every language,
and every language must use the same placeholders (checked at import). The Chinese uses the
standard terms, as the rest of the app: 词元, 词嵌入, 查询向量, 键向量, 值向量, 得分, 注意力权重,
上下文向量, 概率分布.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.analysis.arithmetic import STEP_NAMES, Breakdown, softmax
from explorer.analysis.attribution import attribute
from explorer.formulas import formula_html
from explorer.i18n import LANGS, TEXTS, placeholders
from explorer.model.capture import Analysis, display_tokens
from explorer.model.generation import DEFAULT_SAMPLING, MIN_TEMPERATURE
from explorer.views import esc

VECTOR_PREVIEW = 4  # dims of a vector quoted in a sentence
TOP_SHOWN = 3
LANGUAGE_CHOICES = tuple((TEXTS[lang]["language"], lang) for lang in LANGS)


@dataclass(frozen=True)
class Stage:
    name: str
    steps: tuple[str, ...]  # the Breakdown steps this stage explains
    formula: str
    title: Mapping[str, str]  # by language
    explain: Mapping[str, str]
    live: Mapping[str, tuple[str, ...]]  # sentences with {placeholders}, the same in every language


# (name, the Breakdown steps it explains, formula): the words are in explorer/texts/.
_STAGES = (
    ("tokens", (), "text → [t_0, t_1, …, t_n]"),
    ("embeddings", ("x",), "x_i = W_E[t_i] + W_P[i]"),
    ("query_key", ("ln_1", "q", "k"), "Q_i = LN(x_i)·W_Q,  K_j = LN(x_j)·W_K"),
    ("scores", ("scores", "scaled", "masked"), "score_ij = Q_i·K_jᵀ / √d_k;  score_ij = −∞ for j > i"),
    ("softmax", ("pattern",), "attention_ij = exp(score_ij) / Σ_k exp(score_ik)"),
    ("context", ("v", "weighted", "context"), "C_i = Σ_j attention_ij · V_j"),
    ("output", ("heads_concat", "attn_out", "resid_mid", "block_out"), "H_i = x_i + [C_i^0 | … | C_i^h]·W_O"),
    ("next_token", ("logits",), "p = softmax(LN(x_i^L)·W_Eᵀ)"),
    ("attribution", (), "logit_t = Σ_parts (part − mean)/σ · γ·W_U[t] + β·W_U[t]"),
    ("sampling", (), "p_T ∝ p^(1/T);  top-k;  top-p"),
)


def _stage(name: str, steps: tuple[str, ...], formula: str) -> Stage:
    words = {lang: TEXTS[lang]["stages"][name] for lang in LANGS}
    return Stage(
        name,
        steps,
        formula,
        title={lang: w["title"] for lang, w in words.items()},
        explain={lang: w["explain"] for lang, w in words.items()},
        live={lang: tuple(w["live"]) for lang, w in words.items()},
    )


STAGES: tuple[Stage, ...] = tuple(_stage(*stage) for stage in _STAGES)
# Words of the walk-through around the stages, by key and language.
LABELS: Mapping[str, Mapping[str, str]] = {
    key: {lang: TEXTS[lang]["labels"][key] for lang in LANGS} for key in TEXTS["en"]["labels"]
}

_STAGE_NAMES = [stage.name for stage in STAGES]
assert len(set(_STAGE_NAMES)) == len(_STAGE_NAMES), "stage names are unique"
assert all(step in STEP_NAMES for stage in STAGES for step in stage.steps), "stages name Breakdown steps"
assert all(set(TEXTS[lang]["stages"]) == set(_STAGE_NAMES) for lang in LANGS), (
    "every language has every stage"
)


# --- sampling, as transformers' warpers do it ------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """The settings the walk-through's sentences describe; by default the engine's (DEFAULT_SAMPLING)."""

    temperature: float = DEFAULT_SAMPLING.temperature
    top_k: int = DEFAULT_SAMPLING.top_k
    top_p: float = DEFAULT_SAMPLING.top_p
    greedy: bool = DEFAULT_SAMPLING.greedy

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature < MIN_TEMPERATURE


def sampled_probs(logits: np.ndarray, sampling: Sampling) -> np.ndarray:
    """The distribution generation samples from: temperature, then top-k, then top-p, then softmax
    (the order and tie rules of transformers' logits warpers, as GenerationSession uses them)."""
    scores = np.asarray(logits, dtype=np.float64)
    if sampling.is_greedy:
        out = np.zeros_like(scores)
        out[int(np.argmax(scores))] = 1.0
        return out
    scores = scores / sampling.temperature
    if 0 < sampling.top_k < len(scores):
        kth = np.sort(scores)[-sampling.top_k]
        scores = np.where(scores < kth, -np.inf, scores)
    if sampling.top_p < 1.0:
        order = np.argsort(scores, kind="stable")  # ascending, as TopPLogitsWarper sorts
        cumulative = np.cumsum(softmax(scores[order]))
        remove = cumulative <= 1 - sampling.top_p
        remove[-1] = False  # keep at least one token
        scores = scores.copy()
        scores[order[remove]] = -np.inf
    return softmax(scores)


# --- the walk-through ---------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.2f}"


def _vec(values: np.ndarray) -> str:
    shown = ", ".join(_num(float(v)) for v in values[:VECTOR_PREVIEW])
    return shown + (", …" if len(values) > VECTOR_PREVIEW else "")


def _norm(values: np.ndarray) -> str:
    return _num(float(np.linalg.norm(np.asarray(values, dtype=np.float64))))


def _pct(p: float) -> str:
    return f"{p:.0%}" if p >= 0.1 else f"{p:.1%}" if p >= 0.001 else f"{p * 100:.2g}%"


def _chip(token: str) -> str:
    return f'<span class="ae-chip">{esc(token)}</span>'


def _token_name(analysis: Analysis, token_id: int) -> str:
    return display_tokens(analysis.tokenizer, [int(token_id)])[0]


def _ranked(analysis: Analysis, probs: np.ndarray, n: int) -> list[tuple[str, float, str]]:
    top = np.argsort(-probs)[:n]
    return [(_token_name(analysis, int(i)), float(probs[i]), f"id {int(i)}") for i in top]


def _listing(rows: Sequence[tuple[str, float, str]]) -> str:
    """Tokens and their shares, "␣cat 12%, ␣the 5%": a token shown more than once (a key at two
    positions, two ids with one display) says which it is, "␣cat (j = 3) 12%, ␣cat (j = 9) 5%"."""
    counts = Counter(token for token, _, _ in rows)
    return ", ".join(
        f"{_chip(token)}{f' ({which})' if counts[token] > 1 else ''} {_pct(p)}" for token, p, which in rows
    )


def live_values(
    analysis: Analysis,
    bd: Breakdown,
    sampling: Sampling | None = None,
    last: tuple[str, float] | None = None,
    lang: str = "en",
) -> dict[str, str]:
    """Every placeholder of the live sentences, as HTML: numbers formatted, tokens escaped chips.

    `last` is the last generated token and the model's probability for it, if any.
    """
    i, n = bd.query, analysis.n_pos
    keys = np.arange(i + 1)
    top_key = int(keys[np.argmax(bd.pattern[: i + 1])])
    ranked = np.argsort(-bd.pattern[: i + 1], kind="stable")[:TOP_SHOWN]
    d_k = len(bd.q)
    probs = softmax(analysis.logits_at(i).astype(np.float64))
    values = {
        "n_tokens": str(n),
        "vocab": str(len(probs)),
        "first_tokens": " ".join(_chip(t) for t in analysis.tokens[:8]) + (f" … (+{n - 8})" if n > 8 else ""),
        "query": str(i),
        "token": _chip(bd.tokens[i]),
        "token_id": str(int(analysis.token_ids[i])),
        "layer": str(bd.layer),
        "head": str(bd.head),
        "n_layer": str(analysis.n_layer),
        "n_head": str(analysis.n_head),
        "d_model": str(len(bd.x)),
        "d_k": str(d_k),
        "x0": _vec(analysis.resid[0, i]),
        "x0_norm": _norm(analysis.resid[0, i]),
        "x": _vec(bd.x),
        "x_norm": _norm(bd.x),
        "q": _vec(bd.q),
        "key": _chip(bd.tokens[top_key]),
        "k": _vec(bd.k[top_key]),
        "score": _num(float(bd.scores[top_key])),
        "divisor": f"{1 / bd.scaling:.3g}",
        "scaled": _num(float(bd.scaled[top_key])),
        "weight": _pct(float(bd.pattern[top_key])),
        "top_keys": _listing([(bd.tokens[j], float(bd.pattern[j]), f"j = {j}") for j in ranked]),
        "v": _vec(bd.v[top_key]),
        "weighted": _vec(bd.weighted[top_key]),
        "context": _vec(bd.context),
        "context_norm": _norm(bd.context),
        "attn_norm": _norm(bd.attn_out),
        "resid_norm": _norm(bd.resid_mid),
        "block_norm": _norm(bd.block_out),
        "top_next": _listing(_ranked(analysis, probs, TOP_SHOWN)),
    }
    if i + 1 < n:  # the last token has no later one: no "0 later tokens are masked"
        values["n_masked"] = str(n - 1 - i)
        actual = int(analysis.token_ids[i + 1])
        values |= {"actual": _chip(analysis.tokens[i + 1]), "actual_p": _pct(float(probs[actual]))}
    if analysis.keeps_all:
        # A large analysis would compute every layer again for it (gpt2-xl at 1,024 tokens:
        # ~20 s): its sentence is left out here, and "Why this token?" shows it, with progress.
        values |= _attribution_values(analysis, i)
    if sampling is not None:
        values |= _sampling_values(analysis, i, sampling, LABELS["off"][_lang(lang)])
    if last is not None:
        values |= {"last_token": _chip(last[0]), "last_p": _pct(last[1])}
    return values


def _attribution_values(analysis: Analysis, query: int) -> dict[str, str]:
    """The top guess's logit at `query` split into parts (see logit_attribution), its largest part."""
    attr = attribute(analysis, query)
    top = attr.top(1).iloc[0]
    return {
        "attr_token": _chip(attr.token),
        "attr_logit": _num(attr.logit),
        "attr_top": esc(top["component"]),
        "attr_share": f"{float(top['contribution']):+.2f}",
        "attr_parts": str(len(attr.parts)),
        "attr_deviation": f"{attr.deviation:.0e}".replace("e-0", "e-") if attr.deviation else "0",
    }


def _sampling_values(analysis: Analysis, query: int, sampling: Sampling, off: str) -> dict[str, str]:
    logits = analysis.logits_at(query)
    top = int(np.argmax(logits))
    name = _chip(_token_name(analysis, top))
    if sampling.is_greedy:
        return {"greedy_token": name}
    warped = sampled_probs(logits, sampling)
    return {
        "temperature": f"{sampling.temperature:g}",
        "top_k": str(sampling.top_k) if sampling.top_k else off,
        "top_p": f"{sampling.top_p:g}",
        "kept": str(int((warped > 0).sum())),
        "top_token": name,
        "p_model": _pct(float(softmax(logits.astype(np.float64))[top])),
        "p_sampled": _pct(float(warped[top])),
    }


def _sentences(templates: Sequence[str], values: Mapping[str, str], lang: str) -> str:
    """The sentences whose placeholders all have values; the template text itself is escaped."""
    kept = [html.escape(t, quote=False).format(**values) for t in templates if placeholders(t) <= set(values)]
    return ("" if lang == "zh" else " ").join(kept)  # Chinese puts no space after 。


def _lang(lang: str | None) -> str:
    return lang if lang in LANGS else "en"


def stage_html(number: int, stage: Stage, lang: str, values: Mapping[str, str]) -> str:
    return (
        f'<section class="ae-stage" data-stage="{stage.name}">'
        f'<div class="ae-stage-text"><h3><span class="ae-step-n">{number}</span>'
        f"{esc(stage.title[lang])}</h3>"
        f"{formula_html(stage.formula)}"
        f"<p>{esc(stage.explain[lang])}</p></div>"
        f'<div class="ae-stage-live"><div class="ae-live-label">{esc(LABELS["live"][lang])}</div>'
        f"<p>{_sentences(stage.live[lang], values, lang)}</p></div></section>"
    )


def walkthrough_html(
    analysis: Analysis | None,
    bd: Breakdown | None,
    lang: str = "en",
    sampling: Sampling | None = None,
    last: tuple[str, float] | None = None,
) -> str:
    """The whole walk-through in one language, each stage's text beside its live numbers."""
    lang = _lang(lang)
    if analysis is None or bd is None:
        return (
            f'<div class="ae-walk" lang="{lang}"><p class="ae-empty">{esc(LABELS["empty"][lang])}</p></div>'
        )
    values = live_values(analysis, bd, sampling or Sampling(), last, lang)
    head = html.escape(LABELS["following"][lang], quote=False).format(**values)
    stages = "".join(stage_html(n, stage, lang, values) for n, stage in enumerate(STAGES, start=1))
    keys = esc(LABELS["keys"][lang])
    return (
        f'<div class="ae-walk" lang="{lang}"><p class="ae-walk-head">{head}</p>'
        f'<p class="ae-keys">{keys}</p>{stages}</div>'
    )


def _check_placeholders() -> None:
    """Every language's sentences use the same placeholders: the numbers are the same in each."""
    for stage in STAGES:
        for lang in LANGS:
            assert len(stage.live[lang]) == len(stage.live["en"]), (stage.name, lang)
            for a, b in zip(stage.live["en"], stage.live[lang], strict=True):
                assert placeholders(a) == placeholders(b), (stage.name, lang, b)
    for key, label in LABELS.items():
        assert all(placeholders(label[lang]) == placeholders(label["en"]) for lang in LANGS), key


_check_placeholders()
