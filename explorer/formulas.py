"""The formulas of the Q/K/V steps and the walk-through, typeset: LaTeX here, MathML in the page.

Chromium, Firefox and Safari draw MathML natively, so a formula needs no script, no font and no
network (KaTeX would need its fonts and CSS served). Each formula keeps its plain text (the
`formula` of arithmetic.Step and walkthrough.Stage) as the accessible label and as the fallback
where a formula has no LaTeX here or latex2mathml is missing.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

# Plain text (as the steps and stages write it) → LaTeX.
LATEX: dict[str, str] = {
    # arithmetic.STEPS
    "x_i = embeddings + earlier blocks": r"x_i = \text{embeddings} + \text{earlier blocks}",
    "LN(x_i) = γ·(x_i − μ)/σ + β": r"\mathrm{LN}(x_i) = \gamma \cdot \frac{x_i - \mu}{\sigma} + \beta",
    "Q_i = LN(x_i)·W_Q + b_Q": r"Q_i = \mathrm{LN}(x_i)\, W_Q + b_Q",
    "K_j = LN(x_j)·W_K + b_K": r"K_j = \mathrm{LN}(x_j)\, W_K + b_K",
    "s_ij = Q_i · K_j": r"s_{ij} = Q_i \cdot K_j",
    "s_ij / √d_k": r"\frac{s_{ij}}{\sqrt{d_k}}",
    "s_ij = −∞ for j > i": r"s_{ij} = {-\infty} \quad \text{for } j > i",
    "a_ij = exp(s_ij) / Σ_j exp(s_ij)": r"a_{ij} = \frac{\exp(s_{ij})}{\sum_{j} \exp(s_{ij})}",
    "V_j = LN(x_j)·W_V + b_V": r"V_j = \mathrm{LN}(x_j)\, W_V + b_V",
    "a_ij · V_j": r"a_{ij} \cdot V_j",
    "C_i = Σ_j a_ij · V_j": r"C_i = \sum_{j} a_{ij}\, V_j",
    "[C_i^0 | C_i^1 | … | C_i^h]": r"\left[\, C_i^{0} \mid C_i^{1} \mid \dots \mid C_i^{h} \,\right]",
    "A_i = [C_i^0 | … ]·W_O + b_O": r"A_i = \left[\, C_i^{0} \mid \dots \,\right] W_O + b_O",
    "H_i = x_i + A_i": r"H_i = x_i + A_i",
    "x'_i = H_i + MLP(LN(H_i))": r"x'_i = H_i + \mathrm{MLP}(\mathrm{LN}(H_i))",
    "p = softmax(LN_f(x'_i)·W_Eᵀ)": r"p = \mathrm{softmax}\left(\mathrm{LN}_f(x'_i)\, W_E^{\top}\right)",
    # walkthrough.STAGES
    "text → [t_0, t_1, …, t_n]": r"\text{text} \to [t_0, t_1, \dots, t_n]",
    "x_i = W_E[t_i] + W_P[i]": r"x_i = W_E[t_i] + W_P[i]",
    "Q_i = LN(x_i)·W_Q,  K_j = LN(x_j)·W_K": r"Q_i = \mathrm{LN}(x_i)\, W_Q, \quad K_j = \mathrm{LN}(x_j)\, W_K",
    "score_ij = Q_i·K_jᵀ / √d_k;  score_ij = −∞ for j > i": (
        r"\mathrm{score}_{ij} = \frac{Q_i K_j^{\top}}{\sqrt{d_k}}; \quad"
        r" \mathrm{score}_{ij} = {-\infty} \ \text{for } j > i"
    ),
    "attention_ij = exp(score_ij) / Σ_k exp(score_ik)": (
        r"\mathrm{attention}_{ij} = \frac{\exp(\mathrm{score}_{ij})}{\sum_{k} \exp(\mathrm{score}_{ik})}"
    ),
    "C_i = Σ_j attention_ij · V_j": r"C_i = \sum_{j} \mathrm{attention}_{ij}\, V_j",
    "H_i = x_i + [C_i^0 | … | C_i^h]·W_O": r"H_i = x_i + \left[\, C_i^{0} \mid \dots \mid C_i^{h} \,\right] W_O",
    "p = softmax(LN(x_i^L)·W_Eᵀ)": r"p = \mathrm{softmax}\left(\mathrm{LN}(x_i^{L})\, W_E^{\top}\right)",
    "logit_t = Σ_parts (part − mean)/σ · γ·W_U[t] + β·W_U[t]": (
        r"\mathrm{logit}_t = \sum_{\text{parts}} \frac{\text{part} - \text{mean}}{\sigma}"
        r" \cdot \gamma\, W_U[t] + \beta\, W_U[t]"
    ),
    "p_T ∝ p^(1/T);  top-k;  top-p": r"p_T \propto p^{1/T}; \quad \text{top-}k; \quad \text{top-}p",
}


@lru_cache(maxsize=64)  # the steps' and stages' fixed formulas
def formula_html(text: str) -> str:
    """`text` typeset as MathML (its plain text kept as the label), or as code where it cannot be."""
    latex = LATEX.get(text)
    if latex is not None:
        try:
            from latex2mathml.converter import convert
        except ImportError:  # an optional nicety: the plain text says the same
            pass
        else:
            math = convert(latex, display="block")
            label = escape(text, quote=True)
            return math.replace("<math ", f'<math class="ae-math" aria-label="{label}" alttext="{label}" ', 1)
    return f'<code class="ae-formula">{escape(text, quote=True)}</code>'
