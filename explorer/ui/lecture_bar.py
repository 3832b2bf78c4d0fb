"""The lecture bar: Lecture mode, Dark, the page's language and Copy link. The keyboard and the
Plotly tweaks are the page's script (static/page.js), installed by serving.launch; what the
language switch changes is in language.py."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from explorer.ui.common import I18N, static
from explorer.walkthrough import LANGUAGE_CHOICES


@dataclass(frozen=True)
class LectureBar:
    lecture: gr.Checkbox
    dark: gr.Checkbox
    lang: gr.Radio
    copy: gr.Button


def build_lecture_bar() -> LectureBar:
    with gr.Row(elem_id="ae-lecture-bar", equal_height=True):
        lecture = gr.Checkbox(
            False, label=I18N("Lecture mode"), elem_id="ae-lecture", container=False, scale=0, min_width=0
        )
        dark = gr.Checkbox(
            False, label=I18N("Dark"), elem_id="ae-dark", container=False, scale=0, min_width=0
        )
        lang = gr.Radio(
            list(LANGUAGE_CHOICES),
            value="en",
            label=I18N("Language"),
            show_label=False,
            container=False,
            elem_id="ae-lang",
            scale=0,
            min_width=0,
        )
        copy = gr.Button(I18N("Copy link"), elem_id="ae-copy-link", size="sm", scale=0, min_width=0)
    return LectureBar(lecture, dark, lang, copy)


def wire_lecture_bar(bar: LectureBar) -> None:
    """Everything here runs in the page: no server round trip."""
    bar.copy.click(None, js=static("copy_link.js"), api_visibility="private")
    bar.lecture.change(None, [bar.lecture], None, js=static("lecture_toggle.js"), api_visibility="private")
    bar.dark.change(None, [bar.dark], None, js=static("dark_toggle.js"), api_visibility="private")
