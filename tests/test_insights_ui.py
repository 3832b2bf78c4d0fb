"""The #7 tabs' API through gradio_client (tiny random checkpoint), and their pure helpers.

Every number the endpoints return is checked against the engine called directly on the same model.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from browser_util import array, plot

import explorer.insight_views as insight_views
import explorer.ui.head_types_tab as head_types_tab
from explorer import ablate, analyze, compare, head_importance, head_scores, logit_lens
from explorer.analysis.heads import NAMES
from explorer.errors import ExplorerError
from explorer.figures import HEAD_SCORES
from explorer.insight_views import LensView, lens_table, lens_window, parse_heads, swap_names

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

IOI = "When Mary and John went to the store, John gave a drink to"
SWAPPED = "When John and Mary went to the store, Mary gave a drink to"


# --- pure helpers -------------------------------------------------------------------------


def test_parse_heads_reads_lists_and_text() -> None:
    assert parse_heads(["L1H3", "L0H2"]) == ["L1H3", "L0H2"]
    assert parse_heads("L1H3, l2h0;L1H3  L 0 H 1") == ["L1H3", "L2H0", "L0H1"]
    assert parse_heads(None) == [] and parse_heads([]) == []
    with pytest.raises(ExplorerError, match="like L1H3"):
        parse_heads("head three")


def test_swap_names_swaps_every_occurrence_of_the_first_two_names() -> None:
    assert swap_names(IOI) == SWAPPED
    assert swap_names("Then Anna met Ben, and Ben left.") == "Then Ben met Anna, and Anna left."
    with pytest.raises(ExplorerError, match="two names"):
        swap_names("the cat sat on the mat")


@pytest.mark.parametrize(
    ("n_rows", "n_pos", "pos", "expected"),
    [
        (3, 14, 13, (0, 14)),  # short: all of it
        (13, 500, 499, (468, 500)),  # GPT-2's 13 rows: 32 positions, ending at the last
        (13, 500, 0, (0, 32)),
        (13, 500, 200, (177, 209)),  # a picked position sits three quarters into the window
        (25, 1024, 1023, (1000, 1024)),  # gpt2-medium: fewer positions, still readable
    ],
)
def test_lens_window(n_rows: int, n_pos: int, pos: int, expected: tuple[int, int]) -> None:
    lo, hi = lens_window(n_rows, n_pos, pos)
    assert (lo, hi) == expected
    assert lo <= pos < hi and (hi - lo) * n_rows <= max(insight_views.LENS_CELLS, 16 * n_rows)


def test_lens_window_decodes_the_same_as_the_whole_prompt(tiny) -> None:
    analysis = analyze(tiny, IOI)
    whole = logit_lens(analysis, top_k=insight_views.LENS_TOP_K)
    part = insight_views.lens_for(analysis, 4, 10)
    np.testing.assert_array_equal(part.top_ids, whole.top_ids[:, 4:10])
    np.testing.assert_allclose(part.top_probs, whole.top_probs[:, 4:10], rtol=1e-5)
    # each window's last position has no next token inside the window
    np.testing.assert_allclose(part.next_probs[:, :-1], whole.next_probs[:, 4:9], rtol=1e-5)


def test_lens_table_escapes_tokens(tiny) -> None:
    analysis = analyze(tiny, "<b>bold</b> & <script>x</script>")
    view = LensView(("k",), 0, analysis.n_pos, logit_lens(analysis, top_k=3))
    table = lens_table(view, 0)
    assert "<b>bold" not in table and "<script>" not in table
    assert f"p(next = {html.escape(analysis.tokens[1], quote=True)})" in table
    assert table.count("<tr>") == analysis.n_layer + 2  # the header and one row per layer + embed


@pytest.mark.parametrize(
    ("label", "phrase"),
    [
        ("induction", "is an induction head"),
        ("mixed", "is a mixed head"),
        ("previous_token", "is a previous token head"),
        ("first_token", "is a first token head"),
    ],
)
def test_head_card_names_the_type(label: str, phrase: str) -> None:
    import pandas as pd

    row = pd.Series({"layer": 1, "head": 0, "label": label} | {name: 0.5 for name in HEAD_SCORES})
    card = insight_views.head_card(row, "<probe>")
    assert f"L1H0 {phrase}." in card
    assert "&lt;probe&gt;" in card
    assert "Scores: previous token 0.50 · induction 0.50 · duplicate token 0.50 · first token 0.50 · " in card
    assert "_token" not in card  # the data's keys stay out of what people read


def test_the_legend_names_types_as_people_read_them() -> None:
    import pandas as pd

    scores = pd.DataFrame({"label": ["previous_token", "duplicate_token", "first_token", "induction"]})
    legend = insight_views.head_types_legend(scores)
    for name in ("previous token", "duplicate token", "first token", "induction", "mixed"):
        assert f"<b>{name}</b>" in legend
    assert "_token" not in legend


def test_the_issue_7_entry_points_are_exported() -> None:
    import explorer
    import explorer.analysis.comparison  # importing the submodule must not hide the function

    for name in ("head_scores", "ablate", "head_importance", "logit_lens", "compare"):
        assert name in explorer.__all__ and callable(getattr(explorer, name))
    assert explorer.compare is explorer.analysis.comparison.compare


# --- the API --------------------------------------------------------------------------------


def rows(table: str) -> list[list[str]]:
    """The cells of an HTML table's body, unescaped."""
    body = re.search(r"<tbody>(.*)</tbody>", table, re.S).group(1)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


def analyzed(client: Client, prompt: str = IOI) -> None:
    status = client.predict(prompt, 0, 0, False, api_name="/analyze")[0]
    assert "Analyzed" in status


def test_head_types_are_the_engines_and_measured_once_per_model(client: Client, tiny, monkeypatch) -> None:
    calls: list[str] = []

    def counted(loaded, *args, **kwargs):
        calls.append(loaded.name)
        return head_scores(loaded, *args, **kwargs)

    monkeypatch.setattr(head_types_tab, "head_scores", counted)
    analyzed(client)
    first = client.predict(api_name="/head_types")
    again = Client(client.src, verbose=False).predict(api_name="/head_types")  # another session
    assert len(calls) <= 1  # zero when an earlier test of this app measured them already
    expected = head_scores(tiny)
    heat = plot(first[1])["data"][0]
    labels = np.asarray(heat["hovertext"], dtype=object)
    assert labels.shape == (tiny.n_layer, tiny.n_head)
    for row in expected.itertuples(index=False):
        assert labels[row.layer, row.head] == NAMES[row.label]  # "previous token", not its key
    scores = array(heat["customdata"])
    assert scores.shape == (tiny.n_layer, tiny.n_head, 5)
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(
        scores[1, 2, 0], expected.query("layer == 1 and head == 2")["previous_token"].iloc[0], atol=1e-6
    )
    legend = first[2]
    for label in set(expected["label"]):
        assert f"<b>{NAMES[label]}</b>" in legend
    assert plot(again[1])["data"][0]["hovertext"] == heat["hovertext"]


def test_ablation_matches_the_engine(client: Client, tiny) -> None:
    analyzed(client)
    status, summary, dist = client.predict(["L1H2", "L0H1"], -1, "zero", "", api_name="/ablate")
    direct = ablate(tiny, IOI, ["L1H2", "L0H1"], top_k=200)
    assert html.unescape(summary).startswith(f"### {direct.summary}")
    fig = plot(dist)
    assert [t["name"] for t in fig["data"]] == ["full model", "heads removed"]
    before = dict(
        zip(array(fig["data"][0]["customdata"]).tolist(), array(fig["data"][0]["x"]).tolist(), strict=True)
    )
    for token_id, prob in zip(direct.before["token_id"][:8], direct.before["prob"][:8], strict=True):
        assert before[int(token_id)] == pytest.approx(float(prob), rel=1e-5)
    assert any("followed" in a["text"] for a in fig["layout"]["annotations"])

    # a whole layer, mean mode, and a chosen target token
    _, summary, _ = client.predict([], 1, "mean", "␣John", api_name="/ablate")
    direct = ablate(tiny, IOI, layer=1, mode="mean", target=" John")
    assert html.unescape(summary).startswith(f"### {direct.summary}")
    assert "all 4 heads of layer 1" in summary


def test_ablation_errors_are_messages(client: Client) -> None:
    fresh = Client(client.src, verbose=False)
    assert "Analyze a prompt first" in fresh.predict(["L0H0"], -1, "zero", "", api_name="/ablate")[0]
    analyzed(client)
    assert "Pick the heads" in client.predict([], -1, "zero", "", api_name="/ablate")[0]
    assert "There is no head L9H9" in client.predict(["L9H9"], -1, "zero", "", api_name="/ablate")[0]
    status = client.predict(["L0H0"], -1, "zero", "Mary Jane", api_name="/ablate")[0]
    assert "not one" in status and "Traceback" not in status


def test_head_importance_ranks_every_head_like_the_engine(client: Client, tiny) -> None:
    analyzed(client)
    status, fig, table = client.predict("zero", "␣Mary", api_name="/head_importance")
    direct = head_importance(tiny, IOI, " Mary")
    ranked = rows(table)
    assert len(ranked) == tiny.n_layer * tiny.n_head
    assert [r[1] for r in ranked] == direct["name"].tolist()
    np.testing.assert_allclose([float(r[2]) for r in ranked], direct["delta"], atol=1e-4)
    bars = plot(fig)["data"][0]
    assert bars["customdata"] == direct["name"].tolist()[: insight_views.IMPORTANCE_SHOWN]
    assert "Mary" in html.unescape(plot(fig)["layout"]["title"]["text"])


def test_logit_lens_matches_the_engine(client: Client, tiny) -> None:
    analyzed(client)
    analysis = analyze(tiny, IOI)
    direct = logit_lens(analysis, top_k=insight_views.LENS_TOP_K)
    last = analysis.n_pos - 1
    status, fig, table, pos = client.predict(last, api_name="/logit_lens")
    heat = plot(fig)["data"][0]
    z = array(heat["z"])
    assert z.shape == (analysis.n_layer + 1, analysis.n_pos)
    np.testing.assert_allclose(z, direct.top_probs[:, :, 0], rtol=1e-5)
    cells = rows(table)
    assert [r[0] for r in cells] == list(direct.layer_names)
    assert [r[1].rsplit(" ", 1)[0] for r in cells] == direct.top_tokens[:, last, 0].tolist()
    assert pos["value"] == last

    _, _, table, pos = client.predict(3, api_name="/lens_position")
    assert pos["value"] == 3
    assert "p(next = ␣went)" in html.unescape(table)  # position 3 is ␣John, 4 ␣went
    p_next = [float(r[-1].rstrip("%")) / 100 for r in rows(table)]
    np.testing.assert_allclose(p_next, direct.next_probs[:, 3], atol=6e-5)


def test_compare_matches_the_engine(client: Client, tiny) -> None:
    analyzed(client)
    status, alignment, heads, head, next_table, fig = client.predict(IOI, SWAPPED, api_name="/compare")
    direct = compare(analyze(tiny, IOI), analyze(tiny, SWAPPED))
    assert direct.alignment in alignment and "3 positions differ" in alignment
    top = rows(heads)
    assert len(top) == min(insight_views.COMPARE_HEADS_SHOWN, tiny.n_layer * tiny.n_head)
    assert [float(r[1]) for r in top] == pytest.approx(direct.heads["total_variation"].tolist(), abs=1e-4)
    best = top[0][0]
    assert head["value"] == best and plot(fig)["layout"]["title"]["text"].startswith(best)
    tokens = [r[0] for r in rows(next_table)]
    assert "␣Mary" in tokens and "␣John" in tokens  # the swapped names are always in the table

    fig = client.predict("L1H0", api_name="/compare_head")[1]
    z = array(plot(fig)["data"][0]["z"])
    np.testing.assert_allclose(np.nan_to_num(z), np.tril(direct.diff[1, 0]), atol=1e-6)


def test_compare_errors_are_messages(client: Client) -> None:
    analyzed(client)
    status = client.predict(IOI, "   ", api_name="/compare")[0]
    assert "The prompt is empty" in status and "Traceback" not in status
    assert (
        "Press Compare first"
        in Client(client.src, verbose=False).predict("L0H0", api_name="/compare_head")[0]
    )


def test_logit_lens_of_a_long_prompt_shows_a_window_with_true_positions(client: Client, tiny) -> None:
    text = " ".join(
        ["the keeper climbed the stairs and checked the lamp"] * 12
    )  # cut to the 64-token context
    analyzed(client, text)
    _, fig, table, pos = client.predict(63, api_name="/logit_lens")
    figure = plot(fig)
    x = array(figure["data"][0]["x"])
    assert x[0] == 64 - 32 and x[-1] == 63  # 32 positions, ending at the picked one
    assert "positions 32–63 of 64" in figure["layout"]["title"]["text"]
    assert ", pos 63 " in figure["data"][0]["hovertext"][0][-1]
    _, fig, _, pos = client.predict(2, api_name="/lens_position")
    assert array(plot(fig)["data"][0]["x"])[0] == 0 and pos["value"] == 2
