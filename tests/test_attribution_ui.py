"""The 'Why this token?' tab (#19) through gradio_client on the tiny random checkpoint, and its
pure pieces. Every number the endpoint returns is checked against `logit_attribution` called
directly on the same model, prompt, position and token."""

from __future__ import annotations

import html

import numpy as np
import pytest
from browser_util import array, plot

from explorer import analyze, attribute
from explorer.attribution_views import (
    attribution_summary,
    head_from_click,
    md_text,
    predictions,
    resolve_token,
    token_from_click,
)

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

IOI = "When Mary and John went to the store, John gave a drink to"
XSS = "<script>alert(1)</script> <b>bold</b> {x} ${y}"


@pytest.fixture(scope="module")
def ioi(tiny):
    return analyze(tiny, IOI)


# --- pure pieces ----------------------------------------------------------------------------


def test_clicks_name_heads_and_tokens() -> None:
    assert head_from_click([1, 3], 2, 4) == (1, 3)  # a tile of the heads grid
    assert head_from_click([0, 2, 5], 2, 4) == (0, 2)  # an edge of the flow view: layer, head, key
    assert head_from_click("L1H0", 2, 4) == (1, 0)  # a bar
    assert head_from_click("L1 MLP", 2, 4) is None and head_from_click("embed", 2, 4) is None
    assert head_from_click([5, 0], 2, 4) is None and head_from_click(None, 2, 4) is None
    assert token_from_click(None, 3.0, 14) == 3  # a token node carries no customdata
    assert token_from_click([0, 1, 3], 3.0, 14) is None and token_from_click(None, 99, 14) is None


def test_tokens_resolve_by_display_string_or_text(ioi) -> None:
    top = predictions(ioi, 13)
    assert resolve_token(ioi, "", top) is None and resolve_token(ioi, None, top) is None
    assert resolve_token(ioi, top[2][0], top) == top[2][1]  # a top prediction, by its display string
    assert resolve_token(ioi, "␣John", top) == int(ioi.token_ids[3])  # a prompt token
    assert resolve_token(ioi, " cat", top) == " cat"  # anything else, as typed
    probs = [p for _, _, p in top]
    assert probs == sorted(probs, reverse=True) and len(top) == 5


def test_summary_escapes_markdown_and_html() -> None:
    assert md_text("<b>*x*_[y]</b>") == "&lt;b&gt;&#42;x&#42;&#95;&#91;y&#93;&lt;/b&gt;"


def test_summary_names_the_token_and_the_sum(ioi) -> None:
    attr = attribute(ioi, 13, " Mary", versus=" John")
    text = attribution_summary(ioi, attr)
    assert "At position 13 <span class='ae-chip'>␣to</span>" in text
    assert "logit difference for <span class='ae-chip'>␣Mary</span>" in text
    assert "minus <span class='ae-chip'>␣John</span>" in text and f"**{attr.logit:.2f}**" in text
    assert "add up to it within" in text or "add up to it exactly" in text


# --- the API --------------------------------------------------------------------------------


def analyzed(client: Client, prompt: str = IOI) -> None:
    assert "Analyzed" in client.predict(prompt, 0, 0, False, api_name="/analyze")[0]


def explain(client: Client, query: int, token: str = "", versus: str = "", threshold: float = 0.05) -> tuple:
    status, summary, heads, bars, flow, tokens, versus_choices = client.predict(
        query, token, versus, threshold, api_name="/attribution"
    )
    return status, html.unescape(summary), plot(heads), plot(bars), plot(flow), tokens


def test_attribution_is_the_engines(client: Client, ioi) -> None:
    analyzed(client)
    status, summary, heads, bars, flow, _ = explain(client, 13)
    direct = attribute(ioi, 13)
    np.testing.assert_allclose(array(heads["data"][0]["z"]), direct.heads, atol=1e-6)
    assert heads["layout"]["title"]["text"].startswith("Which heads push")
    assert f"the model's logit for {direct.token} (its top prediction" in summary.replace(
        "<span class='ae-chip'>", ""
    ).replace("</span>", "")
    assert f"**{direct.logit:.2f}**" in summary and "add up to it" in summary
    assert bars["data"][0]["customdata"][::-1] == direct.top(12)["component"].tolist()
    np.testing.assert_allclose(array(bars["data"][0]["x"])[::-1], direct.top(12)["contribution"], atol=1e-5)
    edges = next(t for t in flow["data"] if t.get("customdata") is not None)
    index = array(edges["customdata"]).astype(int)
    values = direct.sources[index[:, 0], index[:, 1], index[:, 2]]
    top = float(np.abs(direct.sources).max())
    assert (np.abs(values) >= 0.05 * top - 1e-6).all()
    assert len(index) == int((np.abs(direct.sources) >= 0.05 * top).sum())
    # a higher threshold keeps fewer edges; another position is another attribution
    fewer = explain(client, 13, threshold=0.5)[4]
    assert len(array(next(t for t in fewer["data"] if t.get("customdata") is not None)["customdata"])) < len(
        index
    )
    _, summary5, heads5, *_ = explain(client, 5)
    np.testing.assert_allclose(array(heads5["data"][0]["z"]), attribute(ioi, 5).heads, atol=1e-6)
    assert "At position 5" in summary5


def test_versus_gives_the_logit_difference(client: Client, ioi) -> None:
    analyzed(client)
    _, summary, heads, _, flow, _ = explain(client, 13, "␣Mary", "␣John")
    direct = attribute(ioi, 13, " Mary", versus=" John")
    np.testing.assert_allclose(array(heads["data"][0]["z"]), direct.heads, atol=1e-6)
    assert "logit difference" in summary and "␣Mary" in summary and "␣John" in summary
    assert f"**{direct.logit:.2f}**" in summary
    assert "␣Mary" in html.unescape(flow["layout"]["title"]["text"])
    # typed with a plain space, or picked from the top predictions by its display string
    _, typed, heads2, *_ = explain(client, 13, " Mary", " John")
    np.testing.assert_allclose(array(heads2["data"][0]["z"]), direct.heads, atol=1e-6)
    top = predictions(ioi, 13)[1]
    _, picked, heads3, *_ = explain(client, 13, top[0])
    np.testing.assert_allclose(array(heads3["data"][0]["z"]), attribute(ioi, 13, top[1]).heads, atol=1e-6)
    assert "rank 2" in picked


def test_bad_tokens_are_messages(client: Client) -> None:
    fresh = Client(client.src, verbose=False)
    status = fresh.predict(13, "", "", 0.05, api_name="/attribution")[0]
    assert "Analyze a prompt first" in status
    analyzed(client)
    status, summary, *_ = client.predict(13, " Mary Jane", "", 0.05, api_name="/attribution")
    assert "tokens, not one" in html.unescape(status) and "⚠" in summary
    assert "Error" not in status and "Traceback" not in status
    status, summary, *_ = client.predict(13, " Mary", " Mary", 0.05, api_name="/attribution")
    assert "the target itself" in summary


def test_token_text_is_escaped(client: Client, tiny) -> None:
    analyzed(client, XSS)
    xss = analyze(tiny, XSS)
    where = max(i for i, t in enumerate(xss.tokens) if "<" in t)  # a token with markup in it
    status, summary, heads, bars, flow, *_ = client.predict(
        where, xss.tokens[0], "", 0.0, api_name="/attribution"
    )
    assert "⚠" not in summary and "ae-error" not in status  # a prompt token, by its display string
    for text in (summary, heads["plot"], flow["plot"], bars["plot"]):
        assert "<script" not in text and "<b>" not in text and "${" not in text
    assert "&lt;" in summary


def test_explain_the_last_generated_token(client: Client, tiny) -> None:
    fresh = Client(client.src, verbose=False)
    out = fresh.predict(0, 0, False, api_name="/explain_last_generated")
    assert "Nothing is generated yet" in out[0] and "Error" not in out[0]
    settings = (True, 1.0, 0, 1.0, 0)  # greedy, temperature, top_k, top_p, seed
    for _ in range(3):
        fresh.predict(IOI, *settings, 0, -1, api_name="/step")
    out = fresh.predict(0, 0, False, api_name="/explain_last_generated")
    assert "Analyzed" in out[0]
    from explorer import GenerationSession

    gen = GenerationSession(tiny, IOI, greedy=True)
    for _ in range(3):
        gen.step()
    generated = analyze(tiny, gen.text)
    before = generated.n_pos - 2
    token = out[-2]  # the token box: the last generated token
    assert generated.tokens[-1] == token and out[5]["value"] == before  # the query: the position before it
    status, summary, heads, *_ = explain(fresh, before, token)
    direct = attribute(generated, before, int(generated.token_ids[-1]))
    np.testing.assert_allclose(array(heads["data"][0]["z"]), direct.heads, atol=1e-6)
    assert summary.startswith("**The last generated token.**")
    assert f"At position {before}" in summary


def test_the_walkthrough_quotes_the_attribution(ioi) -> None:
    from explorer import breakdown
    from explorer.walkthrough import live_values, walkthrough_html

    attr = attribute(ioi, 9)
    values = live_values(ioi, breakdown(ioi, 0, 0, 9))
    top = attr.top(1).iloc[0]
    assert values["attr_logit"] == f"{attr.logit:.2f}" and values["attr_top"] == top["component"]
    assert values["attr_share"] == f"{top['contribution']:+.2f}" and attr.token in values["attr_token"]
    for lang, phrase in (("en", "Why this token?"), ("zh", "为什么是这个词元？")):  # as the tab is named
        page = walkthrough_html(ioi, breakdown(ioi, 0, 0, 9), lang)
        assert 'data-stage="attribution"' in page and phrase in page and values["attr_share"] in page
