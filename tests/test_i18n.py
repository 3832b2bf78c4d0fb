"""The interface in two languages: every text the UI uses has its Chinese, every template the same
placeholders in both; the server's messages, the engine's errors and the figures' titles are said
in the session's language, with what the user typed kept exactly (and escaped) as before."""

from __future__ import annotations

import ast
import html
import json
import re
from pathlib import Path

import pytest

from explorer import analyze, breakdown
from explorer.analysis.arithmetic import STEPS
from explorer.errors import ExplorerError
from explorer.i18n import TEXTS, UI_TEXT, WORDS, placeholders, say, sentences, translate

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "explorer" / "ui"
# Calls whose argument (by position) is an English text of explorer/texts: gr.I18n's key, the
# template said, a panel's message.
TEXT_ARGUMENT = {"I18N": 0, "say": 1, "empty_note": 0, "placeholder": 0, "empty_html": 0}
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _strings(node: ast.AST, names: dict[str, ast.AST], depth: int = 0) -> list[str]:
    """The strings an argument can be: a literal, either side of `a if c else b`, a constant
    named in the module or the function, a sum of those."""
    if depth > 6:
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, names, depth + 1) + _strings(node.orelse, names, depth + 1)
    if isinstance(node, ast.Name) and node.id in names:
        return _strings(names[node.id], names, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _strings(node.left, names, depth + 1), _strings(node.right, names, depth + 1)
        return [a + b for a in left for b in right]
    return []


def texts_used(paths: list[Path]) -> dict[str, str]:
    """Every English text the code passes to I18N, say, … (see TEXT_ARGUMENT), with its file."""
    found: dict[str, str] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: dict[str, ast.AST] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    names.setdefault(target.id, node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for t, v in zip(target.elts, node.value.elts, strict=False):
                        if isinstance(t, ast.Name):
                            names.setdefault(t.id, v)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            where = TEXT_ARGUMENT.get(name or "")
            if where is not None and len(node.args) > where:
                for text in _strings(node.args[where], names):
                    found.setdefault(text, path.name)
    return found


def test_every_text_the_interface_uses_has_its_chinese() -> None:
    used = texts_used(sorted(UI.glob("*.py")) + [ROOT / "explorer" / "views.py"])
    assert len(used) > 150, "the finder sees the interface's texts"
    missing = {text: path for text, path in used.items() if text not in WORDS}
    assert not missing, missing
    labels = texts_used(sorted(UI.glob("*.py")))
    in_page = {t for t in labels if t in UI_TEXT["en"]}
    assert all(
        UI_TEXT["zh"][t] and CHINESE.search(UI_TEXT["zh"][t]) for t in in_page if t not in ("Top-k", "Top-p")
    )


def test_texts_named_in_data_have_their_chinese_too() -> None:
    from explorer.analysis.ablation import MODES
    from explorer.analysis.heads import NAMES
    from explorer.ui.export_tab import EXPORT_KINDS
    from explorer.ui.generate_settings import NAMES as SETTINGS
    from explorer.ui.generate_tab import SPEEDS
    from explorer.ui.prompt import load_examples
    from explorer.ui.state import MODEL_CHOICES

    named = [step.title for step in STEPS] + [step.explanation for step in STEPS]
    named += [label for label, _ in EXPORT_KINDS.values()] + [name for name, _ in SPEEDS] + list(MODES)
    named += [e["label"] for e in load_examples()] + list(NAMES.values()) + list(SETTINGS.values())
    named += [MODEL_CHOICES[0][0]]
    missing = [text for text in named if text not in WORDS]
    assert not missing, missing


def test_every_template_has_its_chinese_with_the_same_placeholders() -> None:
    messages = TEXTS["zh"]["messages"]
    assert len(messages) > 80
    for key, words in messages.items():
        assert placeholders(words) == placeholders(key), key
        assert CHINESE.search(words), key
    for key in UI_TEXT["zh"]:
        assert not placeholders(key), key


def test_the_chinese_uses_the_standard_terms() -> None:
    text = json.dumps(TEXTS["zh"], ensure_ascii=False)
    assert "密钥" not in text and "关注力" not in text  # K is 键向量 (key–value), weights 注意力权重
    ui = UI_TEXT["zh"]
    assert (
        ui["Query Q_i"] == "查询向量 Q_i"
        and ui["Keys K_j"] == "键向量 K_j"
        and ui["Values V_j"] == "值向量 V_j"
    )
    assert ui["Attention heads"] == "注意力头" and ui["Layer"] == "层" and ui["Temperature"] == "温度"
    assert "残差流" in ui["Residual stream x_i"] and ui["Layer norm"] == "层归一化"
    assert "上下文向量" in ui["Context C_i"] and "贪心解码" in ui["Greedy (always the most likely token)"]
    assert "下一个词元的概率" in ui["The next-token distribution appears here."]
    assert "注意力权重" in ui["Each value scaled by its attention weight."]


def test_the_canvas_words_of_a_run_are_the_same_as_the_texts() -> None:
    """run_stream.js draws a few words itself: they are the Chinese of explorer/texts."""
    js = (UI / "static" / "run_stream.js").read_text(encoding="utf-8")
    table = re.search(r"const ZH = \{(.*?)\};", js, re.DOTALL)
    assert table
    pairs = re.findall(r"'([^']+)': '([^']+)'", table.group(1))
    assert len(pairs) >= 8
    for english, chinese in pairs:
        assert say("zh", english) == chinese, english


def test_say_fills_a_template_in_either_language() -> None:
    template = "Analyzed {n} tokens with {model}: {n_layer} layers × {n_head} heads."
    values = {"n": 14, "model": "gpt2", "n_layer": 12, "n_head": 12}
    assert say("en", template, **values) == "Analyzed 14 tokens with gpt2: 12 layers × 12 heads."
    assert say("zh", template, **values) == "已分析 14 个词元（模型 gpt2）：12 层 × 12 个注意力头。"
    assert say("fr", "Layer") == "Layer" and say("zh", "an unknown text") == "an unknown text"
    assert sentences("en", "A.", "B.") == "A. B." and sentences("zh", "甲。", "乙。") == "甲。乙。"


def test_translate_makes_the_engines_errors_again_in_chinese(tiny) -> None:
    from explorer.model.capture import tokenize
    from explorer.model.generation import GenerationSession, _check_settings

    errors = []
    for bad in (lambda: tokenize(tiny, "   "), lambda: _check_settings(-1, 50, 1.0, 0, False, 100)):
        with pytest.raises(ExplorerError) as err:
            bad()
        errors.append(str(err.value))
    gen = GenerationSession(tiny, "Hello there")
    with pytest.raises(ExplorerError) as err:
        gen.configure(top_p=7)
    errors.append(str(err.value))
    with pytest.raises(ExplorerError) as err:
        gen.force("a few words")
    errors.append(str(err.value))
    zh = [translate(e, "zh") for e in errors]
    assert zh[0] == "提示词为空：请输入要分析的文字。"
    assert zh[1] == "温度必须是 ≥ 0 的数（0 表示贪心解码）；收到的是 -1。"
    assert zh[2] == "Top-p 必须是大于 0、不超过 1 的数（1 表示关闭）；收到的是 7。之前的设置保持不变。"
    assert zh[3].startswith("'a few words' 是 3 个词元") and zh[3].endswith("请选择单个词元。")
    assert [translate(z, "en") for z in zh] == errors  # and back, as a switch of language does


def test_translate_keeps_what_the_user_typed() -> None:
    for text in ("When Mary and John went to the store", "<b>{x}</b> 12 tokens", "", "Layers"):
        assert translate(text, "zh") == text
    # A quoted value is the user's: never translated, even when it reads like a message.
    typed = "'Analyze a prompt first.' is 5 tokens, not one: choose a single token."
    assert translate(typed, "zh") == "'Analyze a prompt first.' 是 5 个词元，而不是一个：请选择单个词元。"
    summary = "Removing L1H0 drops ' Mary' from 41.2% to 3.5%. The top prediction becomes ' John' (30.0%)."
    assert (
        translate(summary, "zh")
        == "移除 L1H0 后，' Mary' 从 41.2% 降到 3.5%。首选预测变为 ' John'（30.0%）。"
    )


def test_status_lines_and_errors_are_escaped_in_every_language(tiny) -> None:
    from explorer.ui.analysis import analysis_status
    from explorer.ui.common import message, status_error, status_in

    evil = "<img src=x onerror=alert(1)> *bold* [link](x)"
    err = ExplorerError(f"{evil!r} is 9 tokens, not one: choose a single token.")
    for lang in ("en", "zh"):
        line = status_error(message(err, lang))
        assert "<img" not in line and "&lt;img" in line and "*bold*" not in line
    analysis = analyze(tiny, "Hello there, general Kenobi")
    en, zh = analysis_status(analysis, "en"), analysis_status(analysis, "zh")
    assert "Analyzed 6 tokens" in en or "Analyzed" in en
    assert "已分析" in zh and "个注意力头" in zh
    assert status_in(en, "zh") == zh and status_in(zh, "en") == en  # a switch remakes the line
    assert status_in("", "zh") is None and status_in(zh, "zh") is None


def test_figures_are_titled_in_the_sessions_language(tiny) -> None:
    from explorer.figures import live
    from explorer.figures.steps import STEP_FIGURES
    from explorer.model.generation import GenerationSession
    from explorer.ui.common import localized

    gen = GenerationSession(tiny, "Hello there, general")
    step = gen.step()
    dist = localized(live.step_distribution(step, 1), "zh")
    assert dist.layout.title.text.startswith("第 1 步：下一个词元的概率分布")
    assert [t.name for t in dist.data] == ["模型", "经采样设置后"]
    assert dist.layout.meta == "step-1-the-next-token-distribution"  # file names stay as they were
    attn = localized(live.new_token_attention(gen.last_pattern, ["a"] * len(gen.ids), step, 0, None), "zh")
    assert attn.layout.title.text.startswith("新词元 &#39;")  # the token escaped as before
    assert attn.layout.title.subtitle.text == "它在第 0 层的注意力，所有注意力头的平均"
    assert localized(live.timeline(gen), "zh").layout.title.text == "生成：每个选中词元的置信度"
    bd = breakdown(analyze(tiny, "Hello there, general Kenobi"), 1, 2, 4)
    titles = {name: localized(make(bd), "zh").layout.title.text for name, make in STEP_FIGURES.items()}
    assert titles["ln_1"] == "层归一化之前与之后" and titles["context"] == "上下文向量 C_i"
    assert titles["scaled"].startswith("查询词元 4 ") and "乘以 1/√d_k 缩放" in titles["scaled"]
    assert all(CHINESE.search(t) for t in titles.values()), titles
    english = STEP_FIGURES["ln_1"](bd)
    assert localized(english, "en").layout.title.text == "Before and after the layer norm"


def test_the_views_speak_the_sessions_language(tiny) -> None:
    from explorer import views

    analysis = analyze(tiny, "Hello there, general Kenobi")
    bd = breakdown(analysis, 1, 2, 4)
    card = html.unescape(
        views.step_card(3, views.STEP_BY_NAME["q"], 1e-7, views.step_note(bd, "q", "zh"), "zh")
    )
    assert "查询向量 Q_i" in card and "✓ 与模型一致" in card and "词元 i 在寻找什么" in card
    assert "<th>键</th>" in views.table_html(views.step_table(bd, "pattern"), "zh")
    assert "第 1 层 · 注意力头 2 · 查询词元 4" in views.selection_markdown(bd, "zh")
    strip = views.tokens_html(["<b>", "x"], [1, 2], 0, lang="zh")
    assert "2 个词元" in strip and "&lt;b&gt;" in strip
    line = views.model_markdown(
        "<m>", "gpt2 was found in the local Hugging Face cache.", 2, 4, 64, "cpu", True, False, "zh"
    )
    assert (
        "模型：&lt;m&gt;" in line
        and "在本地 Hugging Face 缓存中找到了 gpt2。" in line
        and "<b>gpt2</b>" in line
    )


def test_the_insight_views_speak_the_sessions_language(tiny) -> None:
    """The head types' legend and card, the importance, lens and compare tables and the "Why this
    token?" line in Chinese; the user's tokens and prompts escaped exactly as in English, never
    translated."""
    import pandas as pd

    from explorer import insight_views as iv
    from explorer.analysis.ablation import head_importance
    from explorer.analysis.attribution import attribute
    from explorer.analysis.comparison import compare
    from explorer.analysis.lens import logit_lens
    from explorer.attribution_views import attribution_summary, md_text
    from explorer.figures import HEAD_SCORES

    assert not {
        text: path
        for text, path in texts_used([ROOT / "explorer" / "insight_views.py"]).items()
        if text not in WORDS
    }
    legend = iv.head_types_legend(pd.DataFrame({"label": ["induction", "induction", "previous_token"]}), "zh")
    assert "<b>归纳</b>" in legend and "· 2 个注意力头" in legend and "这个模型中没有" in legend
    assert "得分 ≥" in legend and "head" not in re.sub(r"<[^>]*>", "", legend)
    row = pd.Series({"layer": 1, "head": 0, "label": "induction"} | {name: 0.5 for name in HEAD_SCORES})
    card = iv.head_card(row, "<b>x</b> *y*", "zh")
    assert "**L1H0 是一个归纳注意力头**。" in card and "得分：前一词元 0.50 · 归纳 0.50" in card
    assert "已在 **注意力头** 标签页中打开" in card and "&lt;b&gt;x&lt;/b&gt;" in card and "<b>x" not in card
    assert iv.head_card(row, "<b>x</b> *y*").endswith(card.split("：")[-1])  # the probe as in English

    evil = "<b>x</b> Hello there, general Kenobi"
    analysis = analyze(tiny, evil)
    view = iv.LensView(("k",), 0, analysis.n_pos, logit_lens(analysis, top_k=3))
    lens = iv.lens_table(view, 0, "zh")
    assert "<th>层</th>" in lens and f"p(下一个 = {html.escape(analysis.tokens[1], quote=True)})" in lens
    assert "<b>x" not in lens and lens.replace("下一个", "next").replace("<th>层</th>", "<th>layer</th>") == (
        iv.lens_table(view, 0)
    )
    ranked = head_importance(tiny, evil)
    ranking = iv.importance_table(ranked, lang="zh")
    assert "<th>排名</th>" in ranking and "<th>注意力头</th>" in ranking and "移除后的 p" in ranking
    comparison = compare(analysis, analyze(tiny, evil.replace("Kenobi", "Grievous")))
    heads, nexts = (
        iv.compare_heads_table(comparison, lang="zh"),
        iv.next_token_diff_table(comparison, lang="zh"),
    )
    assert "转移的注意力" in heads and "最大变化" in heads
    assert '<th class="ae-tokcell">词元</th>' in nexts and "A 中的 p" in nexts and "<b>" not in nexts

    pos = 3
    attr = attribute(analysis, pos)
    line = attribution_summary(analysis, attr, lang="zh")
    assert line.startswith(f"在位置 {pos} ") and "模型对" in line and "的 logit 是 **" in line
    assert "下面各部分加起来" in line and "它的首选预测" in line
    assert md_text(analysis.tokens[pos]) in line and md_text(attr.token) in line
    versus = attribute(analysis, pos, versus=analysis.tokens[0])
    both = attribution_summary(analysis, versus, lang="zh")
    assert "logit 之差" in both and "减去" in both and md_text(analysis.tokens[0]) in both
    assert "<b>" not in line + both and "&lt;" in md_text(analysis.tokens[0]) + md_text(analysis.tokens[1])
    english = attribution_summary(analysis, attr)
    assert english.startswith(f"At position {pos} ") and "the parts below add up to it" in english
