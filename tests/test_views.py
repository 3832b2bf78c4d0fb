"""The app's pure view helpers: escaping, tables from a Breakdown, labels derived from STEPS."""

from __future__ import annotations

import html
import re
from html import escape as html_escape

import numpy as np
import pytest

from explorer import views
from explorer.analysis.arithmetic import STEP_NAMES, STEPS, breakdown
from explorer.model.capture import analyze

HOSTILE = "<img src=x onerror=alert(1)>${alert(2)}{{x}}`"


def test_esc_neutralises_markup_and_template_syntax() -> None:
    out = views.esc(HOSTILE)
    assert "<" not in out and ">" not in out
    assert "${" not in out and "{{" not in out and "`" not in out
    assert out.startswith("&lt;img src=x onerror=alert&#40;1&#41;&gt;")
    assert html.unescape(out) == HOSTILE  # shown exactly as typed


def test_esc_leaves_no_markdown_syntax() -> None:
    """A link's model name or a prompt in a Markdown component must not become a link or an image
    (`![](//host/x)` would make every visitor's browser fetch from any host)."""
    for text in ("![](//host/x)", "[click](javascript:alert(1))", "**bold** _it_ # head | a | ~x~"):
        out = views.esc(text)
        assert not set(out) & set("[]()!*_#|~<>`") - {"#"} and html.unescape(out) == text


def test_tokens_html_escapes_every_token_and_marks_the_selected_one() -> None:
    html = views.tokens_html([HOSTILE, "␣b"], [1, 2], selected=1)
    assert "<img" not in html and "${" not in html
    assert html.count("data-pos=") == 2
    assert re.search(r'class="ae-tok ae-sel" data-pos="1"', html)


def test_generation_html_escapes_prompt_and_pieces_and_highlights_the_newest() -> None:
    html = views.generation_html(HOSTILE, ["<b>", " ok"], [True, False])
    assert "<img" not in html and "<b>" not in html
    assert html.count("ae-gen") == 2
    assert 'class="ae-gen ae-new"' in html and "ae-forced" in html


@pytest.mark.parametrize(
    ("deviation", "expected"),
    [(3e-7, "✓ matches the model (max |Δ| = 3e-07)"), (None, "—"), (0.5, "✗ differs"), (float("nan"), "✗")],
)
def test_deviation_text(deviation: float | None, expected: str) -> None:
    assert views.deviation_text(deviation).startswith(expected)


def test_every_step_has_a_card_and_a_table(tiny) -> None:
    analysis = analyze(tiny, "When Mary and John went to the store, John gave a drink to")
    bd = breakdown(analysis, 1, 2, 5)
    for number, step in enumerate(STEPS, start=1):
        card = views.step_card(number, step, bd.deviation[step.name], views.step_note(bd, step.name))
        assert (
            views.esc(step.title) in card and f'aria-label="{html_escape(step.formula)}"' in card
        )  # typeset
        table = views.step_table(bd, step.name)
        assert len(table) >= 1
        html = views.table_html(table)
        assert html.count("<tr>") == len(table) + 1
    assert list(views.STEP_BY_NAME) == list(STEP_NAMES)
    nav = views.steps_nav()
    assert all(f"#ae-step-{views.esc(name)}" in nav for name in STEP_NAMES)


def test_tables_round_and_cut_long_vectors(tiny) -> None:
    analysis = analyze(
        tiny, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    )
    bd = breakdown(analysis, 0, 0, analysis.n_pos - 1)
    x = views.step_table(bd, "x")
    assert list(x.columns[2:]) == [str(d) for d in range(views.VECTOR_DIMS)]
    assert x.iloc[0, 2] == pytest.approx(round(float(bd.x[0]), 4))
    assert "first 12 of 32 dims" in views.step_note(bd, "x")
    k = views.step_table(bd, "k")
    assert len(k) == views.MATRIX_ROWS  # the keys with the largest weights
    weights = bd.pattern[: bd.query + 1]
    assert set(k["key"]) == set(np.argsort(-weights)[: views.MATRIX_ROWS])
    pattern = views.step_table(bd, "pattern")
    assert pattern["weight"].sum() == pytest.approx(1.0, abs=1e-3)
    masked = views.step_table(bd, "masked")
    assert (masked["key"] <= bd.query).all()  # the last query has no future keys


def test_symbols_come_from_the_formulas() -> None:
    assert views.symbol("q") == "Q_i"
    assert views.symbol("ln_1") == "LN(x_i)"
    assert views.symbol("heads_concat") == "All heads concatenated"  # no "=": the title
