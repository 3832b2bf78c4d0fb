"""Lecture mode: a guided walk-through with live numbers (English and Chinese), the view as URL
state, and the page's keyboard, theme and Plotly tweaks as JS and CSS strings. No gradio here.

    walkthrough_html(analysis, bd, lang, sampling)  the walk-through for one layer, head and query
    parse_view(query_params) -> View                 a shared link's view, validated
    HEAD_HTML, CSS                                   what `launch` adds to the page

Each walk-through stage is written once with both languages side by side, and its live sentences
share placeholders that `live_values` fills from the Breakdown and the Analysis; a sentence whose
placeholders have no value (no later token to compare with, say) is left out in both languages.
The Chinese follows the seed article's terms: 词嵌入, 查询向量, 密钥向量, 值向量, 得分, 关注力,
上下文向量, 概率分布.
"""

from __future__ import annotations

import html
import json
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from explorer.analysis.arithmetic import STEP_NAMES, Breakdown, softmax
from explorer.model.capture import Analysis, display_tokens
from explorer.model.generation import MIN_TEMPERATURE
from explorer.views import esc

LANGS = ("en", "zh")
LANGUAGE_CHOICES = (("English", "en"), ("中文", "zh"))
VECTOR_PREVIEW = 4  # dims of a vector quoted in a sentence
TOP_SHOWN = 3


@dataclass(frozen=True)
class Stage:
    name: str
    steps: tuple[str, ...]  # the Breakdown steps this stage explains
    formula: str
    title: Mapping[str, str]  # by language
    explain: Mapping[str, str]
    live: Mapping[str, tuple[str, ...]]  # sentences with {placeholders}, the same in every language


STAGES: tuple[Stage, ...] = (
    Stage(
        "tokens",
        (),
        "text → [t_0, t_1, …, t_n]",
        {"en": "Tokens", "zh": "输入序列：切分为词元"},
        {
            "en": "GPT-2 does not read letters or words. A byte-level tokenizer cuts the text into "
            "tokens, each an id in a fixed vocabulary; everything after this works on those ids.",
            "zh": "GPT-2 读的不是字母，也不是整词。字节级分词器把文本切分为词元（token），每个词元是"
            "固定词表中的一个编号；之后的所有计算都基于这些编号。",
        },
        {
            "en": (
                "The prompt is {n_tokens} tokens, from a vocabulary of {vocab}: {first_tokens}.",
                "We follow query position {query}, the token {token} (id {token_id}).",
            ),
            "zh": (
                "这个提示共 {n_tokens} 个词元，词表大小为 {vocab}：{first_tokens}。",
                "我们跟随查询位置 {query}，即词元 {token}（编号 {token_id}）。",
            ),
        },
    ),
    Stage(
        "embeddings",
        ("x",),
        "x_i = W_E[t_i] + W_P[i]",
        {"en": "Embeddings", "zh": "输入编码：词嵌入"},
        {
            "en": "Each id picks a row of the embedding table, and the position adds a position "
            "vector. That sum x_i is the token's vector: the residual stream that every layer reads "
            "and adds to.",
            "zh": "每个编号从词嵌入表中取出一行向量，再加上该位置的位置向量。这个和 x_i 就是该词元的"
            "初始向量，也就是残差流：每一层都读取它，并把自己的结果加到它上面。",
        },
        {
            "en": (
                "x_i for {token} is [{x0}] ({d_model} numbers, length ‖x_i‖ = {x0_norm}).",
                "Entering layer {layer} it has become [{x}] (‖x_i‖ = {x_norm}).",
            ),
            "zh": (
                "{token} 的 x_i 是 [{x0}]（共 {d_model} 个数，长度 ‖x_i‖ = {x0_norm}）。",
                "进入第 {layer} 层时，它已变为 [{x}]（‖x_i‖ = {x_norm}）。",
            ),
        },
    ),
    Stage(
        "query_key",
        ("ln_1", "q", "k"),
        "Q_i = LN(x_i)·W_Q,  K_j = LN(x_j)·W_K",
        {"en": "Query Q and key K", "zh": "查询向量 Q 与密钥向量 K"},
        {
            "en": "After a layer norm, each head projects every position's vector into a query Q "
            "(what this token is looking for) and a key K (what a token offers to be found by). "
            "Both have d_k numbers.",
            "zh": "经过层归一化后，每个注意力头把每个位置的向量投影成查询向量 Q（这个词元在寻找什么）"
            "和密钥向量 K（一个词元能被什么找到）。两者的维度都是 d_k。",
        },
        {
            "en": (
                "In layer {layer}, head {head}: Q_i for {token} is [{q}] (d_k = {d_k}).",
                "K_j for {key}, the key it attends to most, is [{k}].",
            ),
            "zh": (
                "第 {layer} 层第 {head} 个头：{token} 的查询向量 Q_i 是 [{q}]（d_k = {d_k}）。",
                "它最关注的 {key} 的密钥向量 K_j 是 [{k}]。",
            ),
        },
    ),
    Stage(
        "scores",
        ("scores", "scaled", "masked"),
        "score_ij = Q_i·K_jᵀ / √d_k;  score_ij = −∞ for j > i",
        {"en": "Scores", "zh": "得分"},
        {
            "en": "The dot product of the query with every key says how well they match. Dividing by "
            "√d_k keeps the numbers in a range where softmax still discriminates, and the causal mask "
            "sets the scores of later tokens to −∞: a token cannot look ahead.",
            "zh": "查询向量与每个密钥向量的点积表示它们有多匹配。除以 √d_k 让数值保持在 Softmax 仍能"
            "区分的范围内；因果掩码把后面词元的得分设为 −∞：词元不能看到它后面的内容。",
        },
        {
            "en": (
                "Q_i·K_j with {key} is {score}; after ÷√d_k (÷ {divisor}) it is {scaled}.",
                "The {n_masked} later tokens are masked to −∞.",
            ),
            "zh": (
                "与 {key} 的点积 Q_i·K_j 为 {score}；除以 √d_k（÷ {divisor}）后得分为 {scaled}。",
                "后面的 {n_masked} 个词元被掩码设为 −∞。",
            ),
        },
    ),
    Stage(
        "softmax",
        ("pattern",),
        "attention_ij = exp(score_ij) / Σ_k exp(score_ik)",
        {"en": "Softmax: the attention weights", "zh": "Softmax：关注力"},
        {
            "en": "Softmax turns the scores into weights that are positive and sum to 1: how much of "
            "its attention token i gives to each earlier token j.",
            "zh": "Softmax 把得分变成为正且总和为 1 的权重，即关注力：位置 i 把多少注意力分给前面的"
            "每个位置 j。",
        },
        {
            "en": ("Softmax gives {key} {weight}.", "The most attended: {top_keys}."),
            "zh": ("Softmax 之后 {key} 得到 {weight} 的关注力。", "关注力最高的：{top_keys}。"),
        },
    ),
    Stage(
        "context",
        ("v", "weighted", "context"),
        "C_i = Σ_j attention_ij · V_j",
        {"en": "Values V and the context vector C", "zh": "值向量 V 与上下文向量 C"},
        {
            "en": "Each token also has a value V: what it hands over when attended to. The head's "
            "output for token i is the average of the values, weighted by the attention: the context "
            "vector C_i.",
            "zh": "每个词元还有一个值向量 V：被关注时它传递出去的内容。把关注力与值向量相乘并求和，"
            "就得到这个头在位置 i 的上下文向量 C_i。",
        },
        {
            "en": (
                "V_j for {key} is [{v}]; weighted by {weight} it adds [{weighted}].",
                "Summed over all keys: C_i = [{context}] (‖C_i‖ = {context_norm}).",
            ),
            "zh": (
                "{key} 的值向量 V_j 是 [{v}]；乘以关注力 {weight} 后贡献 [{weighted}]。",
                "对所有位置求和：C_i = [{context}]（‖C_i‖ = {context_norm}）。",
            ),
        },
    ),
    Stage(
        "output",
        ("heads_concat", "attn_out", "resid_mid", "block_out"),
        "H_i = x_i + [C_i^0 | … | C_i^h]·W_O",
        {"en": "Output projection and residual", "zh": "输出投影与残差：新的向量 H"},
        {
            "en": "The contexts of all heads are laid side by side and projected by W_O back into the "
            "stream's space, then added to x_i: attention adds to the stream rather than replacing "
            "it. The MLP then adds its own part.",
            "zh": "所有头的上下文向量并排拼接，经 W_O 投影回残差流的空间，再与位置 i 的初始向量 x_i "
            "相加，得到新的向量 H_i：注意力是在残差流上累加，而不是替换。随后 MLP 再加上它的部分。",
        },
        {
            "en": (
                "{n_head} heads × {d_k} = {d_model} numbers go through W_O: the attention output has "
                "length {attn_norm}.",
                "Added to x_i (length {x_norm}) it gives H_i (length {resid_norm}); after the MLP the "
                "block's output has length {block_norm}.",
            ),
            "zh": (
                "{n_head} 个头 × {d_k} = {d_model} 个数经过 W_O：注意力输出的长度为 {attn_norm}。",
                "与 x_i（长度 {x_norm}）相加得到 H_i（长度 {resid_norm}）；经过 MLP 后，这一层的"
                "输出长度为 {block_norm}。",
            ),
        },
    ),
    Stage(
        "next_token",
        ("logits",),
        "p = softmax(LN(x_i^L)·W_Eᵀ)",
        {"en": "The next-token distribution", "zh": "输出解码：下一个词的概率分布"},
        {
            "en": "After the last layer, a final layer norm and a linear layer (the embedding table "
            "used backwards) give a score to every token in the vocabulary, and softmax turns the "
            "scores into a probability distribution over the next token.",
            "zh": "最后一层之后，经过最终的层归一化和一个线性层（把词嵌入表反过来用），词表中每个词元"
            "都得到一个分数，再由 Softmax 函数转换为下一个词元的概率分布。",
        },
        {
            "en": (
                "After all {n_layer} layers, the likeliest tokens after {token} are {top_next}.",
                "The prompt goes on with {actual}, which the model gave {actual_p}.",
            ),
            "zh": (
                "经过全部 {n_layer} 层后，{token} 之后最可能的词元是 {top_next}。",
                "提示中实际的下一个词元是 {actual}，模型给它的概率为 {actual_p}。",
            ),
        },
    ),
    Stage(
        "sampling",
        (),
        "p_T ∝ p^(1/T);  top-k;  top-p",
        {"en": "Sampling the next token", "zh": "采样：选出下一个词元"},
        {
            "en": "Generation picks one token from the distribution and appends it. Temperature "
            "sharpens (T < 1) or flattens (T > 1) it, top-k keeps the k likeliest tokens, top-p the "
            "likeliest until they sum to p; greedy always takes the top one. Then it all runs again.",
            "zh": "生成时从概率分布中选出一个词元并接到文本后面。温度 T < 1 让分布更尖锐，T > 1 更平坦；"
            "top-k 只保留最可能的 k 个词元，top-p 保留概率累计到 p 的词元；贪心解码总是取第一名。"
            "然后整个过程再来一遍。",
        },
        {
            "en": (
                "Greedy: the next token is always {greedy_token}.",
                "With T = {temperature}, top-k = {top_k} and top-p = {top_p}, {kept} tokens can be "
                "drawn; {top_token} goes from {p_model} to {p_sampled}.",
                "The last generated token was {last_token}, which the model gave {last_p}.",
            ),
            "zh": (
                "贪心解码：下一个词元总是 {greedy_token}。",
                "在 T = {temperature}、top-k = {top_k}、top-p = {top_p} 下，可被抽到的词元有 {kept} 个；"
                "{top_token} 的概率从 {p_model} 变为 {p_sampled}。",
                "上一个生成的词元是 {last_token}，模型给它的概率为 {last_p}。",
            ),
        },
    ),
)

# Words of the walk-through around the stages.
LABELS: Mapping[str, Mapping[str, str]] = {
    "live": {"en": "Live numbers for this prompt", "zh": "当前提示的实时数值"},
    "following": {
        "en": "Following layer {layer}, head {head}, query token {query} {token}. Change them above, "
        "or with the keys j/k (layer), h/l (head) and [ ] (query token).",
        "zh": "当前：第 {layer} 层，第 {head} 个头，查询位置 {query} {token}。可在上方更改，或用按键 "
        "j/k（层）、h/l（头）、[ ]（查询词元）。",
    },
    "empty": {
        "en": "Analyze a prompt to start the walk-through.",
        "zh": "先分析一个提示，再开始逐步讲解。",
    },
    "off": {"en": "off", "zh": "关闭"},
    "keys": {
        "en": "Keys: → step · Space run/stop · ← rewind · j/k layer · h/l head · [ ] query · n/p stage",
        "zh": "按键：→ 生成一步 · 空格 运行/停止 · ← 撤回 · j/k 层 · h/l 头 · [ ] 查询词元 · n/p 讲解步骤",
    },
}

# Labels of the lecture controls for gr.I18n, keyed by their English text (what shows when a
# browser's language has no entry); the browser's language picks one.
_UI_ZH = {
    "Walk-through": "逐步讲解",
    "Export": "导出",
    "Lecture mode": "讲课模式",
    "Dark": "深色",
    "Walk-through language": "讲解语言",
    "Copy link": "复制链接",
}
UI_TEXT: Mapping[str, Mapping[str, str]] = {"en": {key: key for key in _UI_ZH}, "zh": _UI_ZH}

_STAGE_NAMES = [stage.name for stage in STAGES]
assert len(set(_STAGE_NAMES)) == len(_STAGE_NAMES), "stage names are unique"
assert all(step in STEP_NAMES for stage in STAGES for step in stage.steps), "stages name Breakdown steps"


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# --- sampling, as transformers' warpers do it ------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False

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


def _ranked(analysis: Analysis, probs: np.ndarray, n: int) -> list[tuple[str, float]]:
    top = np.argsort(-probs)[:n]
    return [(_token_name(analysis, int(i)), float(probs[i])) for i in top]


def _listing(pairs: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{_chip(token)} {_pct(p)}" for token, p in pairs)


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
        "n_masked": str(n - 1 - i),
        "weight": _pct(float(bd.pattern[top_key])),
        "top_keys": _listing([(bd.tokens[j], float(bd.pattern[j])) for j in ranked]),
        "v": _vec(bd.v[top_key]),
        "weighted": _vec(bd.weighted[top_key]),
        "context": _vec(bd.context),
        "context_norm": _norm(bd.context),
        "attn_norm": _norm(bd.attn_out),
        "resid_norm": _norm(bd.resid_mid),
        "block_norm": _norm(bd.block_out),
        "top_next": _listing(_ranked(analysis, probs, TOP_SHOWN)),
    }
    if i + 1 < n:
        actual = int(analysis.token_ids[i + 1])
        values |= {"actual": _chip(analysis.tokens[i + 1]), "actual_p": _pct(float(probs[actual]))}
    if sampling is not None:
        values |= _sampling_values(analysis, i, sampling, LABELS["off"][_lang(lang)])
    if last is not None:
        values |= {"last_token": _chip(last[0]), "last_p": _pct(last[1])}
    return values


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
        f'<code class="ae-formula">{esc(stage.formula)}</code>'
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


# --- the view in the URL ---------------------------------------------------------------------

MAX_URL_PROMPT = 20_000  # characters of a prompt taken from a link


@dataclass(frozen=True)
class View:
    """What a shared link restores. None: not in the link (or not valid), keep the default."""

    prompt: str | None = None
    model: str | None = None
    layer: int | None = None
    head: int | None = None
    query: int | None = None
    mean: bool | None = None
    greedy: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    lang: str | None = None
    lecture: bool | None = None
    dark: bool | None = None


VIEW_KEYS = tuple(f.name for f in fields(View))
# Left out of a link when they have these values, to keep links short.
VIEW_DEFAULTS: Mapping[str, Any] = {
    "layer": 0,
    "head": 0,
    "mean": False,
    "greedy": False,
    "temperature": 1,
    "top_k": 0,
    "top_p": 1,
    "seed": 0,
    "lang": "en",
    "lecture": False,
    "dark": False,
}


def _int(text: str, low: int = 0, high: int = 1 << 31) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if low <= value <= high else None


def _float(text: str, low: float, high: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and low <= value <= high else None


def _bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    return False if lowered in ("0", "false", "no", "off") else None


def parse_view(params: Mapping[str, str]) -> View:
    """A View from a link's query parameters; values that do not parse are dropped, not errors."""
    get = {key: str(params[key]) for key in VIEW_KEYS if key in params and params[key] is not None}
    prompt = get.get("prompt")
    model = get.get("model", "").strip()
    return View(
        prompt=prompt[:MAX_URL_PROMPT] if prompt and prompt.strip() else None,
        model=model[:200] or None,
        layer=_int(get["layer"]) if "layer" in get else None,
        head=_int(get["head"]) if "head" in get else None,
        query=_int(get["query"]) if "query" in get else None,
        mean=_bool(get["mean"]) if "mean" in get else None,
        greedy=_bool(get["greedy"]) if "greedy" in get else None,
        temperature=_float(get["temperature"], 0, 2) if "temperature" in get else None,
        top_k=_int(get["top_k"], 0, 100) if "top_k" in get else None,
        top_p=_float(get["top_p"], 0.05, 1) if "top_p" in get else None,
        seed=_int(get["seed"]) if "seed" in get else None,
        lang=get["lang"] if get.get("lang") in LANGS else None,
        lecture=_bool(get["lecture"]) if "lecture" in get else None,
        dark=_bool(get["dark"]) if "dark" in get else None,
    )


def language_from_header(accept_language: str | None) -> str:
    """'zh' when the browser prefers Chinese over English, else 'en'."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


def url_sync_js(keys: Sequence[str] = VIEW_KEYS) -> str:
    """A JS function of the components' values, in `keys` order, that writes them into the URL
    with history.replaceState (so a reload or a copied link restores the view)."""
    return (
        "(...values) => {\n"
        f"  const keys = {json.dumps(list(keys))};\n"
        f"  const defaults = {json.dumps(dict(VIEW_DEFAULTS))};\n"
        "  const url = new URL(window.location.href);\n"
        "  keys.forEach((key, i) => {\n"
        "    let v = values[i];\n"
        "    if (key === 'query' && v !== null && v !== undefined && v !== '') v = parseInt(v, 10);\n"
        "    if (typeof v === 'boolean') v = v ? 1 : 0;\n"
        "    const d = defaults[key];\n"
        "    const same = d !== undefined && String(typeof d === 'boolean' ? (d ? 1 : 0) : d) === String(v);\n"
        "    if (v === null || v === undefined || v === '' || Number.isNaN(v) || same) url.searchParams.delete(key);\n"
        "    else url.searchParams.set(key, String(v));\n"
        "  });\n"
        "  const before = window.location.href.split('#')[0];\n"
        "  if (url.href === window.location.href) return [];\n"
        "  window.history.replaceState(window.history.state, '', url);\n"
        "  // Plotly points gradient fills (colour bars) at page-url#id when the page has a <base>:\n"
        "  // re-point them, or every colour bar turns blank when the URL changes.\n"
        "  const after = window.location.href.split('#')[0];\n"
        "  document.querySelectorAll('.js-plotly-plot [style*=\"url(\"]').forEach((el) => {\n"
        "    for (const prop of ['fill', 'stroke']) {\n"
        "      const v = el.style[prop];\n"
        "      if (v && v.includes(before + '#')) el.style[prop] = v.split(before + '#').join(after + '#');\n"
        "    }\n"
        "  });\n"
        "  return [];\n"
        "}"
    )


COPY_LINK_JS = """
() => {
  const url = window.location.href;
  const done = (ok) => {
    const b = document.querySelector('#ae-copy-link');
    if (!b) return;
    const text = b.textContent;
    b.textContent = ok ? '✓ Copied' : url;
    setTimeout(() => { b.textContent = text; }, 1600);
  };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).then(() => done(true), () => done(false));
  else done(false);
  return [];
}
"""

LECTURE_TOGGLE_JS = "(on) => { window.aeLecture ? window.aeLecture(!!on) : document.body.classList.toggle('ae-lecture', !!on); return []; }"
DARK_TOGGLE_JS = "(on) => { document.body.classList.toggle('dark', !!on); return []; }"


# --- the page's script: Plotly downloads, lecture fonts, keyboard -------------------------------

HEAD_JS = r"""
(() => {
  if (window.__aeInstalled) return;
  window.__aeInstalled = true;
  const LECTURE_SCALE = 1.4;
  const isLecture = () => document.body && document.body.classList.contains('ae-lecture');

  // --- Plotly: PNG and SVG downloads named by layout.meta, larger fonts in lecture mode.
  // The buttons read the name when clicked, so the config stays the same object for every
  // figure: Plotly.react then updates a plot in place instead of drawing it anew.
  const fileName = (gd) => String((gd.layout && gd.layout.meta) || 'attention-explorer').replace(/[^A-Za-z0-9._-]+/g, '-');
  const download = (format, title, icon) => ({
    name: 'ae-download-' + format,
    title,
    icon,
    click: (gd) => window.Plotly.downloadImage(gd, {format, filename: fileName(gd), scale: format === 'png' ? 2 : 1,
      width: gd._fullLayout.width, height: gd._fullLayout.height}),
  });
  const SVG_ICON = {width: 1000, height: 1000,
    path: 'M450 80h100v480l150-150 70 70-270 270-270-270 70-70 150 150zM120 800h760v120H120z'};
  let extraConfig = null;
  const configFor = (P) => extraConfig || (extraConfig = {
    displaylogo: false,
    modeBarButtonsToRemove: ['toImage'],
    modeBarButtonsToAdd: [download('png', 'Download plot as PNG', P.Icons.camera), download('svg', 'Download plot as SVG', SVG_ICON)],
  });
  const baseFonts = (layout) => ({
    font: (layout.font && layout.font.size) || 12,
    title: (layout.title && layout.title.font && layout.title.font.size) || 17,
  });
  const scaled = (layout, base) => {
    const k = isLecture() ? LECTURE_SCALE : 1;
    const out = Object.assign({}, layout);
    out.font = Object.assign({}, layout.font || {}, {size: Math.round(base.font * k)});
    if (layout.title && typeof layout.title === 'object') {
      out.title = Object.assign({}, layout.title, {font: Object.assign({}, layout.title.font || {}, {size: Math.round(base.title * k)})});
    }
    return out;
  };
  const patch = (P) => {
    if (!P || P.__aePatched || typeof P.react !== 'function') return;
    P.__aePatched = true;
    const react = P.react.bind(P);
    P.react = (gd, data, layout, config) => {
      if (gd && gd.nodeType === 1 && Array.isArray(data) && layout) {
        const base = baseFonts(layout);
        layout = scaled(layout, base);
        config = Object.assign({}, config || {}, configFor(P));
        const out = react(gd, data, layout, config);
        gd.__aeBase = base;
        return out;
      }
      return react(gd, data, layout, config);
    };
  };
  if (window.Plotly) patch(window.Plotly);
  else {
    let current;
    Object.defineProperty(window, 'Plotly', {configurable: true, enumerable: true,
      get: () => current, set: (v) => { current = v; patch(v); }});
  }
  const rescalePlots = () => {
    const P = window.Plotly;
    if (!P) return;
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
      if (!gd.__aeBase || !gd.layout) continue;
      const k = isLecture() ? LECTURE_SCALE : 1;
      const update = {'font.size': Math.round(gd.__aeBase.font * k)};
      if (gd.layout.title && typeof gd.layout.title === 'object') update['title.font.size'] = Math.round(gd.__aeBase.title * k);
      P.relayout(gd, update);
    }
  };
  window.aeLecture = (on) => { document.body.classList.toggle('ae-lecture', on); rescalePlots(); };

  // --- Keyboard: never while typing.
  const typing = (el) => {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
    return tag === 'INPUT' && !['checkbox', 'radio', 'button', 'submit', 'reset', 'range'].includes(el.type);
  };
  const visible = (el) => !!el && el.offsetParent !== null;
  const showGenerate = () => {
    const panel = document.getElementById('ae-gen-tab');
    if (visible(panel)) return 0;
    const tab = Array.from(document.querySelectorAll('[role=tab]')).find(
      (t) => (t.getAttribute('aria-controls') === 'ae-gen-tab') || t.id === 'ae-gen-tab-button');
    if (tab) { tab.click(); return 120; }
    return 0;
  };
  const press = (id) => {
    const wait = showGenerate();
    setTimeout(() => {
      const b = document.getElementById(id);
      if (b && !b.disabled) b.click();
      document.documentElement.dataset.aePressed = id;  // what the last key pressed, for tests
    }, wait);
  };
  const running = () => !!document.querySelector('#ae-gen-text.pending, #ae-gen-text .pending, #ae-gen-text.generating, #ae-gen-text .generating, #ae-dist.pending, #ae-dist .pending');
  const nudge = (id, delta) => {
    const r = document.querySelector('#' + id + ' input[type=range]');
    if (!r || r.disabled) return;
    const v = Math.min(Number(r.max), Math.max(Number(r.min), Number(r.value) + delta));
    if (v === Number(r.value)) return;
    r.value = String(v);
    r.dispatchEvent(new Event('input', {bubbles: true}));
    r.dispatchEvent(new Event('change', {bubbles: true}));
  };
  const moveQuery = (delta) => {
    const sel = document.querySelector('#ae-tokens .ae-sel');
    if (!sel) return;
    const next = document.querySelector('#ae-tokens [data-pos="' + (Number(sel.dataset.pos) + delta) + '"]');
    if (next) next.click();
  };
  let stageAt = -1;
  const stage = (delta) => {
    const all = Array.from(document.querySelectorAll('.ae-walk .ae-stage'));
    if (!all.length || !visible(all[0])) return;
    stageAt = Math.min(all.length - 1, Math.max(0, stageAt + delta));
    all.forEach((s, i) => s.classList.toggle('ae-focus', i === stageAt));
    all[stageAt].scrollIntoView({behavior: 'smooth', block: 'center'});
  };
  const KEYS = {
    'ArrowRight': () => press('ae-step'),
    'ArrowLeft': () => press('ae-rewind'),
    ' ': () => press(running() ? 'ae-stop' : 'ae-run'),
    'j': () => nudge('ae-layer', 1),
    'k': () => nudge('ae-layer', -1),
    'l': () => nudge('ae-head', 1),
    'h': () => nudge('ae-head', -1),
    ']': () => moveQuery(1),
    '[': () => moveQuery(-1),
    'n': () => stage(1),
    'p': () => stage(-1),
  };
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const action = KEYS[event.key];
    const target = event.target;
    if (!action || typing(target)) return;
    event.preventDefault();
    if (target && target !== document.body && typeof target.blur === 'function') target.blur();
    action();
  });
})();
"""

HEAD_HTML = f"<script>{HEAD_JS}</script>"

CSS = """
#ae-lecture-bar { align-items: center; justify-content: flex-end; gap: .3rem 1.2rem; flex-wrap: wrap; }
#ae-lecture-bar > * { flex: 0 0 auto !important; width: auto !important; margin: 0 !important; }
#ae-lecture-bar .wrap { gap: .4rem; }
.ae-keys { color: var(--body-text-color-subdued); font-size: .85rem; }
.ae-walk { display: flex; flex-direction: column; gap: .9rem; }
.ae-walk-head { font-size: 1.05rem; margin: 0; }
.ae-stage { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; align-items: start;
  border-top: 1px solid var(--border-color-primary); padding-top: .8rem; scroll-margin: 5rem; }
.ae-stage h3 { margin: 0 0 .3rem; font-size: 1.15rem; }
.ae-stage p { margin: .2rem 0; line-height: 1.55; }
.ae-stage-live { background: var(--background-fill-secondary); border-radius: 8px; padding: .5rem .8rem;
  font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.ae-live-label { font-size: .75rem; text-transform: uppercase; letter-spacing: .05em;
  color: var(--body-text-color-subdued); margin-bottom: .2rem; }
.ae-stage.ae-focus { outline: 3px solid #D55E00; outline-offset: 6px; border-radius: 4px; }
.ae-walk[lang=zh] { line-height: 1.7; }
@media (max-width: 720px) {
  .ae-stage { grid-template-columns: minmax(0, 1fr); gap: .4rem; }
}
/* Lecture mode: readable from the back of a hall, high contrast. */
html:has(body.ae-lecture) { font-size: 20px; }
body.ae-lecture .gradio-container {
  --text-xxs: 13px; --text-xs: 15px; --text-sm: 17px; --text-md: 20px; --text-lg: 24px; --text-xl: 30px;
  --text-xxl: 36px; --body-text-size: 20px; --body-text-color: #000; --body-text-color-subdued: #1e293b;
  --block-label-text-color: #000; --block-info-text-color: #1e293b; --block-title-text-color: #000;
  --input-text-size: 20px; --block-label-text-size: 17px; --block-info-text-size: 16px;
  --button-large-text-size: 22px; --button-medium-text-size: 20px; --button-small-text-size: 18px;
  font-size: 20px;
}
body.ae-lecture.dark .gradio-container {
  --body-text-color: #fff; --body-text-color-subdued: #e2e8f0; --block-label-text-color: #fff;
  --block-info-text-color: #e2e8f0; --block-title-text-color: #fff;
}
/* Dark mode: the app's coloured text and light controls, readable on a dark page. */
.dark .ae-ok-text { color: #34d399; }
.dark .ae-error { color: #f87171; }
.dark .ae-gen { background: #3730a3; }
.dark .ae-gen.ae-new { background: #D55E00; }
.dark #ae-lecture-bar { --button-secondary-text-color: var(--body-text-color);
  --checkbox-label-text-color: var(--body-text-color); }
.dark #ae-lecture-bar label { color: var(--body-text-color); }
body.ae-lecture .ae-brand h1 { font-size: 2.4rem; }
body.ae-lecture .ae-brand p, body.ae-lecture #ae-model .ae-muted { display: none; }  /* room on a 720p screen */
body.ae-lecture #ae-gen-buttons button { white-space: nowrap; }
body.ae-lecture .ae-help, body.ae-lecture .ae-note, body.ae-lecture .ae-muted, body.ae-lecture .ae-step-note,
body.ae-lecture .ae-tok-head, body.ae-lecture .ae-footer { color: var(--body-text-color-subdued); font-size: 1rem; }
body.ae-lecture .ae-tok b { font-size: 1.25rem; }
body.ae-lecture .ae-tok i { font-size: .8rem; }
body.ae-lecture .ae-tok-list { max-height: 220px; }
body.ae-lecture .ae-walk { font-size: 1.3rem; }
body.ae-lecture .ae-stage h3 { font-size: 1.6rem; }
body.ae-lecture .ae-text { font-size: 1.5rem; }
body.ae-lecture .ae-chip { font-weight: 600; }
/* Phones: the prompt above its button, so that there is room to read and type. */
@media (max-width: 640px) {
  #ae-prompt-row { flex-direction: column; align-items: stretch; }
  #ae-prompt-row > * { min-width: 0 !important; width: 100% !important; }
  #ae-lecture-bar { justify-content: flex-start; }
}
/* Plotly draws on white in every theme: frame it so it reads as a card in dark mode. */
.dark .js-plotly-plot .main-svg:first-child { border-radius: 6px; }
"""


__all__ = [
    "CSS",
    "HEAD_HTML",
    "HEAD_JS",
    "LABELS",
    "LANGS",
    "LANGUAGE_CHOICES",
    "STAGES",
    "UI_TEXT",
    "VIEW_DEFAULTS",
    "VIEW_KEYS",
    "Sampling",
    "Stage",
    "View",
    "language_from_header",
    "live_values",
    "parse_view",
    "sampled_probs",
    "walkthrough_html",
    "url_sync_js",
]
