"""A safe hosted demo: localhost and no share link unless asked, hosted mode's allowlist and
limits through the app, and markup in prompts, tokens, links and messages shown as text."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from browser_util import expect, serve

import explorer.ui as app_module
from explorer import cli
from explorer.model.capture import display_tokens
from explorer.ui.state import HOSTED_MODELS, Limits, Session

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
T = 60_000  # ms: the machine may be busy
LONG = "one two three four " * 100  # about 400 tokens


# --- binding and sharing ------------------------------------------------------------------


def test_the_cli_binds_localhost_and_shares_nothing_unless_asked() -> None:
    args = cli.parse_args([])
    assert (args.host, args.port, args.share, args.hosted, args.model) == (
        "127.0.0.1",
        7860,
        False,
        False,
        None,
    )
    assert cli.parse_args(["--share"]).share is True
    assert cli.parse_args(["--host", "0.0.0.0"]).host == "0.0.0.0"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """What the entry points pass to build_app and launch, with neither run."""
    seen: dict[str, dict] = {}

    def build_app(**kwargs: Any) -> str:
        seen["build"] = kwargs
        return "demo"

    def launch(demo: str, **kwargs: Any) -> None:
        seen["launch"] = kwargs

    monkeypatch.setattr(app_module, "build_app", build_app)
    monkeypatch.setattr(app_module, "launch", launch)
    for key in (
        "SPACE_ID",
        "EXPLORER_HOSTED",
        "EXPLORER_MODEL",
        "GRADIO_SERVER_NAME",
        "GRADIO_SERVER_PORT",
        "PORT",
    ):
        monkeypatch.delenv(key, raising=False)
    return seen


@pytest.mark.parametrize(
    ("argv", "space_id", "hosted"),
    [([], None, False), (["--hosted"], None, True), ([], "someone/attention-explorer", True)],
)
def test_the_cli_is_hosted_when_asked_or_on_a_space(
    calls: dict, monkeypatch: pytest.MonkeyPatch, argv: list[str], space_id: str | None, hosted: bool
) -> None:
    if space_id:
        monkeypatch.setenv("SPACE_ID", space_id)
    assert cli.main(argv) == 0
    assert calls["build"] == {"model": None, "device": "auto", "hosted": hosted, "load_in_background": True}
    assert calls["launch"] == {"host": "127.0.0.1", "port": 7860, "share": False}


@pytest.mark.parametrize(
    ("env", "hosted", "host"),
    [({}, False, "127.0.0.1"), ({"SPACE_ID": "someone/attention-explorer"}, True, "0.0.0.0")],
)
def test_the_space_entry_point_is_hosted_on_a_space_only(
    calls: dict, monkeypatch: pytest.MonkeyPatch, env: dict, hosted: bool, host: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    assert calls["build"] == {"model": None, "hosted": hosted, "load_in_background": True}
    assert calls["launch"] == {"host": host, "port": 7860}  # a Space must listen on every address


# --- hosted mode through the app -----------------------------------------------------------


@pytest.fixture(scope="module")
def hosted_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from conftest import make_tiny_checkpoint

    from explorer import load_model

    # A context longer than the hosted prompt limit, so that the limit is what cuts.
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-ctx512"), n_positions=512)
    return load_model(str(folder), device="cpu")


@pytest.fixture(scope="module")
def hosted(hosted_model: Any) -> Iterator[tuple[Any, str]]:
    with serve(None, hosted=True, loaded=hosted_model) as (demo, url):
        yield demo, url


def test_hosted_limits_are_the_documented_numbers() -> None:
    assert Limits.for_mode(True) == Limits(
        hosted=True, max_prompt_tokens=256, max_run_tokens=32, max_new_tokens=256
    )
    assert Limits.for_mode(False) == Limits(
        hosted=False, max_prompt_tokens=None, max_run_tokens=200, max_new_tokens=None
    )
    assert HOSTED_MODELS == ("bundled", "gpt2", "distilgpt2", "gpt2-medium")


def test_hosted_prompts_are_cut_to_256_tokens_and_say_so(hosted: tuple, hosted_model: Any) -> None:
    tokenizer = hosted_model.tokenizer
    ids = tokenizer(LONG)["input_ids"]
    assert 256 < len(ids) < 511
    client = Client(hosted[1], verbose=False)
    out = client.predict(LONG, 0, 0, False, api_name="/analyze")
    assert "Analyzed 256 tokens" in out[0]
    assert f"The prompt was cut: {len(ids) - 256} tokens did not fit." in out[0]
    step = client.predict(LONG, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/step")
    kept = len(tokenizer(tokenizer.decode(ids[:256]))["input_ids"])
    assert kept == 256
    assert (
        step[0]
        == f"Generating from the prompt (256 tokens). The prompt was cut: {len(ids) - 256} tokens did not fit."
    )


def test_hosted_runs_are_at_most_32_tokens_and_a_generation_256(hosted: tuple) -> None:
    demo, url = hosted
    prompt = "A hosted run of the longest length"
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match=r"^Value 33 is greater than maximum value 32\.$"):
        client.predict(prompt, 33, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/run")
    updates = list(client.submit(prompt, 32, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/run"))
    assert len(updates) == 32
    (session,) = [
        value
        for state in list(demo.state_holder.session_data.values())
        for value in list(state.state_data.values())
        if isinstance(value, Session) and value.gen_prompt == prompt
    ]
    assert session.generation.max_new_tokens == 256


def test_hosted_mode_loads_no_model_outside_the_list(hosted: tuple, hosted_model: Any) -> None:
    client = Client(hosted[1], verbose=False)
    for source in ("/etc", "../../../etc", "~", "gpt2-xl", "openai-community/gpt2", hosted_model.source):
        with pytest.raises(AppError) as err:  # the picker takes no typed value in hosted mode
            client.predict(source, api_name="/load_model")
        assert str(err.value).startswith(f"Value: {source} is not in the list of choices: ['bundled', 'gpt2'")
    # The model served is a choice (it is what the picker shows), but not one to load again here.
    out = client.predict(hosted_model.name, api_name="/load_model")
    assert (
        f"This hosted app can load only {', '.join(HOSTED_MODELS)}. The previous model keeps serving."
        in out[0]
    )
    assert f"with {hosted_model.name}:" in client.predict("Still here", 0, 0, False, api_name="/analyze")[0]


def test_hosted_mode_takes_a_prompt_with_lone_surrogates(hosted: tuple) -> None:
    """JSON may carry what Python's str holds but no tokenizer takes; the hosted prompt cut used to
    pass it to the tokenizer unclean."""
    base = f"{hosted[1]}gradio_api/call/step"
    body = '{"data": ["lone \\ud800 surrogate", false, 1.0, 0, 1.0, 0, 0, -1]}'
    posted = httpx.post(base, content=body.encode(), headers={"content-type": "application/json"}, timeout=60)
    stream = httpx.get(f"{base}/{posted.json()['event_id']}", timeout=120).text
    assert "event: complete" in stream and "Generating from the prompt" in stream, stream[:500]


# --- markup shown as text, in Chromium -------------------------------------------------------


def open_page(browser: Any, url: str, wait: bool = True) -> tuple[Any, dict]:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    seen: dict[str, list[str]] = {"dialogs": [], "console": [], "errors": []}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("console", lambda m: seen["console"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(url)
    if wait:  # for the example prompt's analysis on page load, so that it races no test's own
        expect()(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    return page, seen


def assert_nothing_ran(page: Any, seen: dict) -> None:
    injected = page.evaluate(
        """() => ({
            images: document.querySelectorAll('img[src="x"], img[src="y"]').length,
            scripts: [...document.scripts].filter(s => s.textContent.includes('XSS-MARKER')).length,
            toasts: [...document.querySelectorAll('[data-testid="toast-text"]')]
                .filter(t => t.querySelector('img, script, svg, iframe')).length,
        })"""
    )
    assert injected == {"images": 0, "scripts": 0, "toasts": 0}
    assert seen["dialogs"] == []
    assert not [m for m in seen["console"] if "XSS-MARKER" in m]
    assert not seen["errors"], seen["errors"]


def force(page: Any, token: str) -> None:
    page.locator("#ae-force-text textarea, #ae-force-text input").first.fill(token)
    page.get_by_role("button", name="Force", exact=True).click()


@pytest.mark.browser
def test_markup_that_forced_tokens_complete_is_shown_as_text(browser: Any, hosted: tuple) -> None:
    x = expect()
    page, seen = open_page(browser, hosted[1])
    prompt = "<img src=x onerror=alert(1)"  # the tag is closed by a forced token
    page.locator("#ae-prompt textarea").fill(prompt)
    page.get_by_role("button", name="Analyze", exact=True).click()
    x(page.locator("#ae-tokens [data-pos='0'] b")).to_have_text("<", timeout=T)
    page.get_by_role("tab", name="Generate").click()

    force(page, ">")
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(1, timeout=T)
    force(page, "<")
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(2, timeout=T)
    x(page.locator("#ae-gen-text")).to_have_text(prompt + "><")
    assert page.locator("#ae-gen-step .ae-chip").inner_text() == "<"
    page.get_by_role("button", name="Step", exact=True).click()  # and whatever the model adds
    x(page.locator("#ae-gen-text .ae-gen")).to_have_count(3, timeout=T)

    # Many tokens: refused, quoting what was typed, in the status line and in a toast. Quotes and
    # a backslash, through repr and Markdown, still read as typed.
    force(page, "<img src=y onerror=alert(2)>")
    refused = "'<img src=y onerror=alert(2)>' is 18 tokens, not one: choose a single token."
    x(page.locator("#ae-status")).to_contain_text(refused, timeout=T)
    x(page.locator("[data-testid='toast-text']").filter(has_text=refused).first).to_be_attached(timeout=T)
    force(page, "<b>it's\\</b>")
    x(page.locator("#ae-status")).to_contain_text('"<b>it\'s\\\\</b>" is', timeout=T)
    assert_nothing_ran(page, seen)
    page.close()


@pytest.mark.browser
def test_a_link_loads_no_model_outside_the_list_and_its_prompt_is_text(
    browser: Any, hosted: tuple, hosted_model: Any
) -> None:
    x = expect()
    prompt = "<script>console.log('XSS-MARKER')</script><img src=x onerror=alert(5)>"
    page, seen = open_page(
        browser, hosted[1] + "?" + urlencode({"prompt": prompt, "model": "/etc"}), wait=False
    )
    refused = (
        "The link's model could not be loaded: This hosted app can load only "
        f"{', '.join(HOSTED_MODELS)}. The current model is kept."
    )
    x(page.locator("[data-testid='toast-text']").first).to_contain_text(refused, timeout=T)
    x(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
    x(page.locator("#ae-tokens [data-pos='0'] b")).to_have_text("<", timeout=T)
    ids = hosted_model.tokenizer(prompt)["input_ids"]
    chips = page.locator("#ae-tokens .ae-tok b").all_inner_texts()
    assert chips == list(display_tokens(hosted_model.tokenizer, ids))
    x(page.locator("#ae-model")).to_contain_text(hosted_model.name)
    assert_nothing_ran(page, seen)
    page.close()
