"""The walk-through: both languages say the same live numbers, which are the breakdown's own;
sampling as transformers does it; a link's view parsed safely."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer import analyze, breakdown
from explorer.analysis.arithmetic import STEP_NAMES
from explorer.i18n import UI_TEXT
from explorer.link import VIEW_KEYS, View, language_from_header, parse_view
from explorer.ui.view_state import url_sync_js
from explorer.walkthrough import (
    LABELS,
    LANGS,
    STAGES,
    Sampling,
    _listing,
    live_values,
    placeholders,
    sampled_probs,
    walkthrough_html,
)

TEXT = "When Mary and John went to the store, John gave a drink to"
XSS = "<img src=x onerror=alert(1)> {value} ${x} went"


@pytest.fixture(scope="module")
def analysis(tiny):
    return analyze(tiny, TEXT)


def test_every_stage_is_written_in_both_languages_with_the_same_numbers() -> None:
    for stage in STAGES:
        for field in (stage.title, stage.explain, stage.live):
            assert set(field) == set(LANGS), stage.name
        en, zh = stage.live["en"], stage.live["zh"]
        assert len(en) == len(zh), stage.name
        for a, b in zip(en, zh, strict=True):
            assert placeholders(a) == placeholders(b), (stage.name, a, b)
    for label in LABELS.values():
        assert set(label) == set(LANGS)
        assert placeholders(label["en"]) == placeholders(label["zh"])


def test_stages_go_from_tokens_to_sampling_through_the_breakdown_steps() -> None:
    names = [stage.name for stage in STAGES]
    assert names[0] == "tokens" and names[-1] == "sampling"
    covered = [step for stage in STAGES for step in stage.steps]
    assert all(step in STEP_NAMES for step in covered)
    assert [s for s in STEP_NAMES if s in covered] == covered  # in the breakdown's order
    for step in ("q", "k", "scores", "scaled", "pattern", "v", "context", "attn_out", "resid_mid", "logits"):
        assert step in covered


def test_chinese_follows_the_articles_terms() -> None:
    zh = " ".join(s.title["zh"] + s.explain["zh"] + "".join(s.live["zh"]) for s in STAGES)
    for term in ("词嵌入", "查询向量", "键向量", "值向量", "得分", "注意力权重", "上下文向量", "概率分布"):
        assert term in zh, term
    assert (
        "密钥" not in zh and "关注力" not in zh
    )  # a key here is 键, as in key–value; weights are 注意力权重


def test_live_numbers_are_the_breakdowns(analysis) -> None:
    bd = breakdown(analysis, 1, 2, 9)
    values = live_values(analysis, bd, Sampling(temperature=0.7, top_k=5), last=("␣the", 0.25))
    top = int(np.argmax(bd.pattern[:10]))
    assert values["score"] == f"{bd.scores[top]:.2f}"
    assert values["scaled"] == f"{bd.scaled[top]:.2f}"
    assert values["divisor"] == f"{np.sqrt(8):.3g}"  # d_head 8
    assert values["weight"] == f"{bd.pattern[top]:.0%}" or bd.pattern[top] < 0.1
    assert analysis.tokens[top] in values["key"]
    assert values["q"].startswith(", ".join(f"{v:.2f}" for v in bd.q[:4]))
    assert values["n_masked"] == str(analysis.n_pos - 10)
    assert values["kept"] == "5" and values["last_p"] == "25%"
    # Every sentence of every stage has its numbers here, in both languages.
    for stage in STAGES:
        for lang in LANGS:
            kept = [t for t in stage.live[lang] if placeholders(t) <= set(values)]
            assert len(kept) >= len(stage.live[lang]) - 1, (stage.name, lang)  # greedy xor sampled


def test_a_listed_token_shown_twice_says_which_it_is(tiny) -> None:
    """ "The most attended: ␣speaking 10%, ␣speaking 9.5%" named two keys alike (#18): a token
    at two positions now carries its position j, and two ids shown alike would carry their ids."""
    import html as html_

    repeated = analyze(tiny, "I was speaking to him and he was speaking to me while we were speaking")
    chip = re.compile(r'<span class="ae-chip">(.*?)</span>( \((?:j = \d+|id \d+)\))?')
    tagged = 0
    for layer in range(repeated.n_layer):
        for head in range(repeated.n_head):
            for query in range(repeated.n_pos):
                bd = breakdown(repeated, layer, head, query)
                values = live_values(repeated, bd)
                for key in ("top_keys", "top_next"):
                    shown = [html_.unescape(t + w) for t, w in chip.findall(values[key])]
                    assert len(set(shown)) == len(shown), (layer, head, query, values[key])
                    tagged += sum(" (j = " in s for s in shown)
                keys = np.argsort(-bd.pattern[: query + 1], kind="stable")[:3]
                for j in keys:
                    if [bd.tokens[i] for i in keys].count(bd.tokens[j]) > 1:
                        assert f"</span> (j = {j}) " in values["top_keys"]
    assert tagged  # the prompt's repeats do reach the top keys
    rows = [("␣a", 0.5, "id 7"), ("␣a", 0.25, "id 9"), ("␣b", 0.15, "id 3")]
    assert re.sub("<[^>]+>", "", _listing(rows)) == "␣a (id 7) 50%, ␣a (id 9) 25%, ␣b 15%"


def test_walkthrough_shows_the_same_numbers_in_english_and_chinese(analysis) -> None:
    bd = breakdown(analysis, 0, 3, 5)
    en, zh = walkthrough_html(analysis, bd, "en"), walkthrough_html(analysis, bd, "zh")
    number = re.compile(r"−?-?\d+\.\d+|\d+(?:\.\d+)?%")
    assert sorted(number.findall(en)) == sorted(number.findall(zh))
    assert f"{bd.scores[int(np.argmax(bd.pattern[:6]))]:.2f}" in en
    assert 'lang="zh"' in zh and "注意力权重" in zh
    assert "Softmax gives" in en and "Softmax gives" not in zh and "off" not in zh.split("ae-stage", 1)[1]
    assert en.count('class="ae-stage"') == len(STAGES)


def test_sentences_without_numbers_are_left_out(analysis) -> None:
    last = breakdown(analysis, 0, 0, analysis.n_pos - 1)
    html = walkthrough_html(analysis, last, "en")
    assert "The prompt goes on with" not in html  # no later token to compare with
    mid = walkthrough_html(analysis, breakdown(analysis, 0, 0, 3), "en")
    assert "The prompt goes on with" in mid
    greedy = walkthrough_html(analysis, last, "en", Sampling(greedy=True))
    assert "Greedy: the next token is always" in greedy and "tokens can be drawn" not in greedy


def test_user_text_is_escaped_in_the_walkthrough(tiny) -> None:
    xss = analyze(tiny, XSS)
    html = walkthrough_html(xss, breakdown(xss, 0, 0, xss.n_pos - 1), "zh")
    assert "<img" not in html and "${" not in html and "{value}" not in html


def test_walkthrough_before_an_analysis_says_what_to_do() -> None:
    assert "Analyze a prompt" in walkthrough_html(None, None, "en")
    assert "分析" in walkthrough_html(None, None, "zh")
    assert "Analyze a prompt" in walkthrough_html(None, None, "fr")  # unknown languages: English


@pytest.mark.parametrize(
    "sampling",
    [
        Sampling(),
        Sampling(temperature=0.5),
        Sampling(temperature=1.7, top_k=7),
        Sampling(top_p=0.3),
        Sampling(temperature=0.8, top_k=50, top_p=0.9),
        Sampling(top_k=1),
    ],
)
def test_sampled_probs_match_transformers_warpers(sampling: Sampling) -> None:
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = np.random.default_rng(0).normal(0, 3, 500).astype(np.float32)
    logits[:3] = logits[3]  # ties at the top-k boundary are kept, as transformers keeps them
    warpers: list = []
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k:
        warpers.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(sampling.top_p))
    scores = torch.from_numpy(logits[None]).double()
    expected = torch.softmax(LogitsProcessorList(warpers)(torch.zeros(1, 1, dtype=torch.long), scores), -1)
    np.testing.assert_allclose(sampled_probs(logits, sampling), expected[0].numpy(), atol=1e-9)


def test_greedy_and_tiny_temperatures_put_everything_on_the_top_token() -> None:
    logits = np.array([0.1, 2.0, -1.0])
    for sampling in (Sampling(greedy=True), Sampling(temperature=0.0)):
        np.testing.assert_array_equal(sampled_probs(logits, sampling), [0, 1, 0])


def test_parse_view_keeps_valid_values_and_drops_the_rest() -> None:
    view = parse_view(
        {
            "prompt": "Hello there",
            "model": " gpt2 ",
            "layer": "2",
            "head": "11",
            "query": "3",
            "mean": "1",
            "temperature": "0.7",
            "top_k": "40",
            "top_p": "0.9",
            "seed": "7",
            "greedy": "false",
            "lang": "zh",
            "lecture": "1",
            "dark": "0",
            "other": "ignored",
        }
    )
    assert view == View("Hello there", "gpt2", 2, 11, 3, True, False, 0.7, 40, 0.9, 7, "zh", True, False)
    bad = parse_view(
        {
            "prompt": "   ",
            "layer": "-1",
            "head": "x",
            "query": "1e9",
            "temperature": "nan",
            "top_k": "1000",
            "top_p": "0",
            "lang": "<b>",
            "mean": "maybe",
        }
    )
    assert bad == View()
    assert len(parse_view({"prompt": "a" * 50_000}).prompt or "") == 20_000


def test_language_from_the_browsers_header() -> None:
    assert language_from_header("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert language_from_header("en-US,en;q=0.9,zh;q=0.5") == "en"
    assert language_from_header("fr-FR,zh-TW;q=0.5") == "zh"
    assert language_from_header(None) == "en"


def test_the_url_script_knows_every_view_key() -> None:
    js = url_sync_js()
    for key in VIEW_KEYS:
        assert f'"{key}"' in js
    assert "history.replaceState" in js


def test_every_translated_label_of_the_app_has_both_languages() -> None:
    ui = Path(__file__).resolve().parent.parent / "explorer" / "ui"
    source = "".join(path.read_text(encoding="utf-8") for path in ui.glob("*.py"))
    used = set(re.findall(r'I18N\("([^"]+)"\)', source))
    assert used, "the app uses translated labels"
    assert used <= set(UI_TEXT["en"]) and used <= set(UI_TEXT["zh"])
    assert all(UI_TEXT["en"][key] == key for key in used)  # English is the key, the fallback too
