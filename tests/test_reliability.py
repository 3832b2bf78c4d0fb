"""Bad input, faults and stopping, through a launched app: a readable message every time, never a
traceback, and the app keeps serving. The Python API's own property test is test_properties.py."""

from __future__ import annotations

import gc
import html
import json
import pickle
import re
import shutil
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_util import CHROMIUM_ARGS, require_chromium, serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import explorer.model.generation as generation
from explorer.ui.state import Session

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

N_CTX = 256
PROMPT = "The cat sat on the mat because"
T = 60_000  # ms, for the browser: the machine may be busy
# Marks of a message that is not meant for a person: a traceback, a repr, Gradio's "see the log",
# or this app's own wording for an exception that no check caught.
UNREADABLE = ("Traceback", 'File "', " object at 0x", "verbose error reporting", "Something went wrong")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import make_tiny_checkpoint

    # Long enough a context for a 200-token run; short enough that long prompts are cheap to make.
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-ctx256"), n_positions=N_CTX)


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="module")
def app(model_dir: Path) -> Iterator[tuple[Any, str]]:
    with serve(str(model_dir)) as (demo, url):
        yield demo, url


@pytest.fixture
def client(app: tuple[Any, str]) -> Client:
    return Client(app[1], verbose=False)


def plain(markup: str) -> str:
    """A status line as a person reads it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup)).strip()


def assert_readable(message: str) -> str:
    text = plain(message)
    assert text and len(text) < 1200, message
    assert not any(mark in text for mark in UNREADABLE), text
    return text


def outcome(client: Client, api: str, *args: Any) -> tuple[str, str, tuple | None]:
    """("ok", status, outputs), ("refused", message, outputs) for a status-line error, or
    ("error", message, None) for an error Gradio raised (a gr.Error: the client's AppError)."""
    try:
        out = client.predict(*args, api_name=api)
    except AppError as err:
        return "error", assert_readable(str(err)), None
    status = out[0]
    assert isinstance(status, str), out
    if "ae-error" in status:
        return "refused", assert_readable(status), out
    return "ok", plain(status), out


def generated(text_html: str) -> int:
    return text_html.count('class="ae-gen')


# --- bad input ------------------------------------------------------------------------------

NASTY = [
    "",
    "   ",
    "\n\t",
    "\x00",
    "\x1b[31m",
    "🙂",
    "👩‍👩‍👧",
    "שלום עולם",
    "\u200b\u200f\u202e\ufeff",
    "e\u0301",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<|endoftext|>",
    "word " * 300,  # beyond the context window
]
# JSON carries no NaN, infinity or lone surrogate from gradio_client: test_raw_requests sends those.
prompts = st.one_of(st.sampled_from(NASTY), st.text(st.characters(exclude_categories=("Cs",)), max_size=30))
numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 0.0, 1e-300, "abc", "", None, True, "0.5"]),
)
heads = st.sampled_from([-1, 0, 3, 4, 99, "x", None])
calls = st.one_of(
    st.tuples(
        st.just("/analyze"), st.tuples(prompts, numbers, numbers, st.sampled_from([False, True, None]))
    ),
    st.tuples(
        st.just("/step"),
        st.tuples(prompts, st.booleans(), numbers, numbers, numbers, numbers, numbers, heads),
    ),
)


def test_any_input_gets_a_result_or_a_readable_error(client: Client, tokenizer: Any) -> None:
    @settings(
        max_examples=16,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(call=calls)
    def one(call: tuple[str, tuple]) -> None:
        api, args = call
        kind, message, out = outcome(client, api, *args)
        if kind == "ok" and api == "/analyze":
            assert message.startswith("✓ Analyzed"), message
        elif kind == "ok":
            assert generated(out[1]) >= 1, out[1]

    one()
    # And a normal call still works, with the numbers it should have.
    n = len(tokenizer(PROMPT)["input_ids"])
    assert f"Analyzed {n} tokens" in client.predict(PROMPT, 0, 0, False, api_name="/analyze")[0]
    step = client.predict(PROMPT, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/step")
    assert step[0] == f"Generating from the prompt ({n} tokens)." and generated(step[1]) == 1


def call_raw(url: str, api: str, data: str) -> tuple[str, str]:
    """POST raw JSON (NaN, lone surrogates: what a browser or script may send) to Gradio's REST
    API; returns the final event ("complete" or "error") and what it says."""
    base = f"{url}gradio_api/call/{api}"
    posted = httpx.post(
        base, content=f'{{"data": {data}}}'.encode(), headers={"content-type": "application/json"}, timeout=60
    )
    if posted.status_code != 200:
        return "http", posted.text
    stream = httpx.get(f"{base}/{posted.json()['event_id']}", timeout=120).text
    kind = re.findall(r"^event: (\w+)", stream, re.M)[-1]
    payload = json.loads(re.findall(r"^data: (.*)$", stream, re.M)[-1])
    if kind == "error":
        return kind, (payload or {}).get("error") or ""
    return kind, payload[0]


RAW = [  # (endpoint, data, what the answer says; None: any readable refusal)
    (
        "analyze",
        '["\\ud800 lone \\udfff surrogates \\u0000 NUL \\u202e RTL \\u200d", 0, 0, false]',
        "Analyzed",
    ),
    ("step", '["\\ud83d half an emoji", false, 1.0, 0, 1.0, 0, 0, -1]', "Generating from the prompt"),
    ("force", '["\\udc00", "hi", false, 1.0, 0, 1.0, 0, 0, -1]', "not one"),
    ("analyze", '["hi", NaN, 0, false]', "Analyzed"),  # an index that is no number: the first
    ("analyze", '["hi", 0, Infinity, false]', "greater than maximum"),
    ("step", '["hi", false, NaN, 0, 1.0, 0, 0, -1]', "Temperature must be a number"),
    ("step", '["hi", false, 1.0, 0, NaN, 0, 0, -1]', "Top-p must be a number greater than 0"),
    ("run", '["hi", NaN, false, 1.0, 0, 1.0, 0, 0, -1]', "run length must be a whole number"),
    ("step", '["hi", false, 1.0, NaN, 1.0, 0, 0, -1]', "Top-k must be a whole number"),
    ("step", '["hi", false, 1.0, 0, 1.0, NaN, 0, -1]', "Could not preprocess input component"),
    ("step", '["hi", false, -Infinity, 0, 1.0, 0, 0, -1]', "less than minimum"),
    ("analyze", '["hi"]', "didn't receive enough input values"),
    ("step", '[["a"], {"x": 1}, "hot", null, "p", [], {}, null]', None),
    ("analyze", "[null, null, null, null]", None),
]


def test_raw_requests_get_a_result_or_a_readable_error(app: tuple[Any, str]) -> None:
    url = app[1]
    for api, data, says in RAW:
        kind, message = call_raw(url, api, data)
        assert kind in ("complete", "error"), (api, data, kind, message)
        text = assert_readable(message)
        if says is not None:
            assert says in text, (api, data, text)
    kind, status = call_raw(url, "analyze", f'["{PROMPT}", 0, 0, false]')
    assert kind == "complete" and "Analyzed" in status


def test_a_prompt_longer_than_the_context_is_cut_and_says_so(client: Client, tokenizer: Any) -> None:
    prompt = "one two three four " * 100
    n = len(tokenizer(prompt)["input_ids"])
    assert n > N_CTX
    out = client.predict(prompt, 0, 0, False, api_name="/analyze")
    assert f"Analyzed {N_CTX} tokens" in out[0]
    assert f"The prompt was cut: {n - N_CTX} tokens did not fit." in out[0]
    assert out[1].count("data-pos=") == N_CTX

    # Generation keeps one position free for the new token: the one step fills the window.
    step = client.predict(prompt, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/step")
    cut = n - (N_CTX - 1)
    assert (
        step[0]
        == f"Generating from the prompt ({N_CTX - 1} tokens). The prompt was cut: {cut} tokens did not fit."
    )
    assert f"Generation has stopped: the context window of {N_CTX} tokens is full" in step[2]
    kind, message, _ = outcome(client, "/step", prompt, True, 1.0, 0, 1.0, 0, 0, -1)
    assert kind == "refused"
    assert (
        message
        == f"⚠ Generation has stopped: the context window of {N_CTX} tokens is full. Rewind or start again."
    )


def test_a_run_longer_than_the_context_stops_at_its_end(client: Client, tokenizer: Any) -> None:
    prompt = tokenizer.decode(tokenizer("one two three four " * 100)["input_ids"][: N_CTX - 8])
    n = len(tokenizer(prompt)["input_ids"])
    job = client.submit(prompt, 200, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/run")
    updates = list(job)
    assert len(updates) == N_CTX - n  # one per token, up to the window's end, not 200
    assert generated(updates[-1][1]) == N_CTX - n
    assert f"context window of {N_CTX} tokens is full" in updates[-1][2]


def test_run_length_and_settings_out_of_range_are_refused_with_their_limit(client: Client) -> None:
    for args, says in [
        ((PROMPT, 201, True, 1.0, 0, 1.0, 0, 0, -1), "Value 201 is greater than maximum value 200."),
        ((PROMPT, 0, True, 1.0, 0, 1.0, 0, 0, -1), "Value 0 is less than minimum value 1."),
        ((PROMPT, 5, False, -0.5, 0, 1.0, 0, 0, -1), "Value -0.5 is less than minimum value 0."),
        ((PROMPT, 5, False, 1.0, 101, 1.0, 0, 0, -1), "Value 101 is greater than maximum value 100."),
        ((PROMPT, 5, False, 1.0, 0, 0.0, 0, 0, -1), "Value 0.0 is less than minimum value 0.05."),
        ((PROMPT, 5, False, 1.0, 0, 1.01, 0, 0, -1), "Value 1.01 is greater than maximum value 1."),
    ]:
        with pytest.raises(AppError) as err:
            client.predict(*args, api_name="/run")
        assert str(err.value) == says
    # temperature 0 is greedy, not an error
    greedy = client.predict(PROMPT, False, 0.0, 0, 1.0, 0, 0, -1, api_name="/step")
    assert "after settings p = 100.00%" in greedy[2]


# --- faults while loading a model ---------------------------------------------------------


def _corrupt(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 64)


def _partial(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


class _Payload:
    """Unpickling this creates a file: the proof that a pickle was never opened."""

    marker = ""

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _pickle_only(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    payload = _Payload()
    payload.marker = str(folder.parent / f"{folder.name}-UNPICKLED")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(payload))


FOLDER_FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "corrupt": (_corrupt, "could not be read"),
    "partial": (_partial, "could not be read"),
    "no weights": (_no_weights, "has no model weights (model.safetensors is missing)"),
    "pickle only": (_pickle_only, "has only pickle weights (pytorch_model.bin)"),
}


def assert_old_model_serves(client: Client, out: tuple, says: str, model_dir: Path) -> None:
    status = plain(out[0])
    assert says in status and status.endswith("The previous model keeps serving."), status
    picker = out[2]["value"] if isinstance(out[2], dict) else out[2]
    assert picker == str(model_dir)  # the picker shows the old model again
    assert f"with {model_dir.name}:" in client.predict(PROMPT, 0, 0, False, api_name="/analyze")[0]


@pytest.mark.parametrize("fault", list(FOLDER_FAULTS))
def test_a_broken_checkpoint_is_explained_and_the_old_model_keeps_serving(
    client: Client, model_dir: Path, tmp_path: Path, fault: str
) -> None:
    damage, says = FOLDER_FAULTS[fault]
    folder = shutil.copytree(model_dir, tmp_path / "broken")
    damage(folder)
    out = client.predict(str(folder), api_name="/load_model")
    assert_old_model_serves(client, out, says, model_dir)
    assert not (tmp_path / "broken-UNPICKLED").exists()


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("no-such-user/no-such-model", "the hub cannot be reached from here"),
        ("not a model id!", "is neither a model folder here nor a Hugging Face model id"),
    ],
)
def test_an_unknown_model_id_is_explained_and_the_old_model_keeps_serving(
    client: Client, model_dir: Path, source: str, says: str
) -> None:
    out = client.predict(source, api_name="/load_model")
    assert_old_model_serves(client, out, says, model_dir)


def test_an_unreachable_hub_fails_fast(
    client: Client, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online as far as the app knows, but nothing answers
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    start = time.monotonic()
    out = client.predict("someone/some-gpt2", api_name="/load_model")
    assert time.monotonic() - start < 20  # a 1.5 s probe, not the hub client's retries
    assert_old_model_serves(client, out, "the hub cannot be reached from here", model_dir)


# --- stopping -------------------------------------------------------------------------------


class Steps:
    """When each of the server's generation steps began; each is slowed by `delay` so that a run
    lasts long enough to stop (the app is served from this process: patching the class reaches it)."""

    def __init__(self, delay: float) -> None:
        self.starts: list[float] = []
        self.delay = delay

    @property
    def count(self) -> int:
        return len(self.starts)

    def begun_after(self, moment: float, grace: float) -> int:
        """Steps begun later than `grace` s after `moment`, once any would have begun."""
        time.sleep(max(0.0, moment + grace + 2 * self.delay + 0.5 - time.monotonic()))
        return sum(start > moment + grace for start in self.starts)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Steps:
    counter = Steps(delay=0.1)
    real = generation.GenerationSession.step

    def step(self: generation.GenerationSession) -> generation.StepResult:
        counter.starts.append(time.monotonic())
        time.sleep(counter.delay)
        return real(self)

    monkeypatch.setattr(generation.GenerationSession, "step", step)
    return counter


def wait_for(predicate: Callable[[], bool], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_cancelling_a_run_stops_it_promptly_and_keeps_the_text(client: Client, steps: Steps) -> None:
    job = client.submit(PROMPT, 200, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/run")
    wait_for(lambda: len(job.outputs()) >= 3)
    seen = len(job.outputs())
    start = time.monotonic()
    job.cancel()
    # No step begins once the cancel is in: at most the one under way finishes.
    assert steps.begun_after(start, grace=0.5) == 0
    done = steps.count
    assert seen <= done < 50
    # The text so far is kept: the next step continues it.
    out = client.predict(PROMPT, True, 1.0, 0, 1.0, 0, 0, -1, api_name="/step")
    assert generated(out[1]) == done + 1


def sessions_with(demo: Any, prompt: str) -> list[Session]:
    """The server's Session objects generating from `prompt`."""
    return [
        value
        for state in list(demo.state_holder.session_data.values())
        for value in list(state.state_data.values())
        if isinstance(value, Session) and value.gen_prompt == prompt
    ]


def test_a_client_that_disconnects_mid_run_leaves_no_work_running(app: tuple[Any, str], steps: Steps) -> None:
    """What a closed tab does, over plain HTTP: the queue's event stream and the heartbeat close."""
    demo, url = app
    api = f"{url}gradio_api"
    prompt = "A prompt that only the disconnecting client uses"
    run = next(d for d in httpx.get(f"{url}config").json()["dependencies"] if d.get("api_name") == "run")
    join = {
        "data": [prompt, None, 200, True, 1.0, 0, 1.0, 0, 0, -1],  # the state's slot: the server keeps it
        "fn_index": run["id"],
        "session_hash": uuid.uuid4().hex[:12],
        "event_data": None,
        "trigger_id": None,
    }
    with httpx.Client(timeout=60) as http, http.stream("GET", f"{api}/heartbeat/{join['session_hash']}"):
        assert http.post(f"{api}/queue/join", json=join).status_code == 200
        updates = 0
        with http.stream("GET", f"{api}/queue/data", params={"session_hash": join["session_hash"]}) as events:
            for line in events.iter_lines():
                updates += '"process_generating"' in line
                if updates == 3:
                    break
        (session,) = map(weakref.ref, sessions_with(demo, prompt))
    start = time.monotonic()
    # The step under way ends, and at most one more begins before the server notices.
    assert steps.begun_after(start, grace=steps.delay + 1.0) == 0
    assert 3 <= steps.count < 50
    # ... and the session's state (its analysis and KV cache) goes at once, not an hour later.
    wait_for(lambda: gc.collect() >= 0 and session() is None, timeout=10)


def settle(read: Callable[[], int], still: float = 2.0, timeout: float = 120) -> int:
    """`read()` once it has kept the same value for `still` seconds."""
    end = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() - since < still:
        assert time.monotonic() < end, "never settled"
        time.sleep(0.25)
        if (now := read()) != value:
            value, since = now, time.monotonic()
    return value


@pytest.mark.browser
def test_stop_and_closing_the_page_end_a_run(app: tuple[Any, str], steps: Steps) -> None:
    chromium = require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    demo, url = app
    # Each token redraws three figures: on a busy CPU that takes the page seconds, and a run that
    # outpaces it leaves the page too far behind to take a click.
    steps.delay = 3.0
    prompt = "A prompt that only the browser session uses"
    dialogs: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(2 * T)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            expect(page.locator("#ae-status")).to_contain_text("Analyzed", timeout=T)
            page.locator("#ae-prompt textarea").fill(prompt)
            page.get_by_role("tab", name="Generate").click()
            page.locator("#ae-n input[type=number]").fill("200")
            page.locator("#ae-n input[type=number]").press("Enter")
            tokens = page.locator("#ae-gen-text .ae-gen")

            page.locator("#ae-run").click()
            expect(tokens.first).to_be_attached(timeout=T)
            # A DOM click: no scrolling and hit-testing, which wait on a page busy drawing the run.
            page.locator("#ae-stop").dispatch_event("click")
            assert steps.begun_after(time.monotonic(), grace=1.0) == 0
            assert steps.count < 100
            # The text so far stays: every token but perhaps the one under way at the Stop.
            shown = settle(tokens.count)
            assert steps.count - 1 <= shown <= steps.count

            page.locator("#ae-run").click()  # goes on from there
            expect(tokens.nth(shown)).to_be_attached(timeout=T)
            (session,) = map(weakref.ref, sessions_with(demo, prompt))
            page.close()
            assert steps.begun_after(time.monotonic(), grace=steps.delay + 1.0) == 0
            assert steps.count < 200
        finally:
            browser.close()
    wait_for(lambda: gc.collect() >= 0 and session() is None, timeout=10)
    assert dialogs == []
