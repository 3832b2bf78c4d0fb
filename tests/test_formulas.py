"""The formulas of the Q/K/V steps and the walk-through are typeset (MathML, drawn by the browser
itself: no script, no font, no network), each keeping its plain text as its label."""

from __future__ import annotations

import re
from html import unescape

import pytest

from explorer.analysis.arithmetic import STEPS
from explorer.formulas import LATEX, formula_html
from explorer.walkthrough import STAGES

FORMULAS = [s.formula for s in STEPS] + [s.formula for s in STAGES]


@pytest.mark.parametrize("text", FORMULAS)
def test_every_formula_is_typeset_with_its_text_as_the_label(text: str) -> None:
    assert text in LATEX
    html = formula_html(text)
    assert html.startswith('<math class="ae-math"') and html.endswith("</math>")
    label = re.search(r'aria-label="([^"]*)"', html)
    assert label is not None and unescape(label.group(1)) == text
    assert "<script" not in html and "<mi>" in html


def test_a_formula_without_latex_stays_plain_text_and_escaped() -> None:
    assert (
        formula_html("a < b & <i>c</i>")
        == '<code class="ae-formula">a &lt; b &amp; &lt;i&gt;c&lt;/i&gt;</code>'
    )


def test_the_softmax_is_a_fraction_and_the_scaling_a_square_root() -> None:
    assert "<mfrac>" in formula_html("a_ij = exp(s_ij) / Σ_j exp(s_ij)")
    assert "<msqrt>" in formula_html("s_ij / √d_k")
