"""Many users at once: each session sees only its own prompt and generation, the shared model
cache keeps to its limit, and what one session keeps has a bound."""

from __future__ import annotations

import html
import inspect
import re
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from browser_util import serve

from explorer import GenerationSession
from explorer.model.capture import display_tokens
from explorer.model.generation import StepResult
from explorer.ui.state import KEPT_STEPS, ModelCache, Session, remember

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

USERS = 8
N_TOKENS = 4
THINGS = ["cat", "dog", "bird", "fish", "tree", "car", "ship", "moon"]


@pytest.fixture(scope="module")
def app(tiny_path: Path):
    with serve(str(tiny_path)) as (demo, url):
        yield demo, url


def prompt_for(user: int) -> str:
    return f"User {user} writes about the {THINGS[user]} number {user * 7}"


def chips(tokens_html: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<b>(.*?)</b>", tokens_html)]


def text_parts(gen_html: str) -> tuple[str, list[str]]:
    """(prompt, generated pieces) from the generation text's HTML."""
    prompt = re.search(r'<span class="ae-prompt">(.*?)</span>', gen_html, re.S).group(1)
    pieces = re.findall(r'<span class="ae-gen[^"]*" title="[^"]*">(.*?)</span>', gen_html, re.S)
    return html.unescape(prompt), [html.unescape(p) for p in pieces]


def the_models(demo: Any) -> ModelCache:
    """The app's model cache, from the analyze handler's closure (Context.models)."""
    fn = next(f.fn for f in demo.fns.values() if f.api_name == "analyze")
    return inspect.getclosurevars(inspect.unwrap(fn)).nonlocals["ctx"].models


def test_eight_sessions_at_once_each_see_only_their_own_work(app, tiny) -> None:
    demo, url = app
    start = threading.Barrier(USERS)

    def user(i: int) -> tuple:
        client = Client(url, verbose=False)
        prompt = prompt_for(i)
        start.wait(timeout=120)  # everyone analyzes, then generates, at the same time
        analyzed = client.predict(prompt, 0, 0, False, api_name="/analyze")
        run = list(client.submit(prompt, N_TOKENS, False, 1.0, 0, 1.0, i, 0, -1, api_name="/run"))
        selected = client.predict(0, 0, 999, False, api_name="/breakdown")  # clamped to this prompt
        return analyzed, run, selected

    with ThreadPoolExecutor(USERS) as pool:
        results = list(pool.map(user, range(USERS), timeout=600))  # a hang guard, not a speed check

    for i, (analyzed, run, selected) in enumerate(results):
        prompt = prompt_for(i)
        ids = tiny.tokenizer(prompt)["input_ids"]
        assert f"Analyzed {len(ids)} tokens" in analyzed[0], analyzed[0]
        assert chips(analyzed[1]) == list(display_tokens(tiny.tokenizer, ids))
        # The same tokens as this prompt and this seed give on their own, one session at a time.
        reference = GenerationSession(tiny, prompt, seed=i, top_k=0)  # as the /run call above
        expected = [tiny.tokenizer.decode([reference.step().token_id]) for _ in range(N_TOKENS)]
        assert len(run) == N_TOKENS and run[0][0] == f"Generating from the prompt ({len(ids)} tokens)."
        assert text_parts(run[-1][1]) == (prompt, expected)
        assert any(f"query token {len(ids) - 1}" in str(part) for part in selected)

    # On the server: one Session per user, each holding its own prompt's analysis and steps.
    sessions = [
        value
        for state in list(demo.state_holder.session_data.values())
        for value in list(state.state_data.values())
        if isinstance(value, Session) and value.gen_prompt.startswith("User ")
    ]
    assert sorted(s.gen_prompt for s in sessions) == sorted(map(prompt_for, range(USERS)))
    assert len({id(s) for s in sessions}) == USERS
    assert len({id(s.generation) for s in sessions}) == USERS
    for s in sessions:
        assert s.analysis is not None and s.analysis.text == s.gen_prompt
        assert len(s.generation.generated) == N_TOKENS and len(s.steps) == N_TOKENS


def test_the_model_cache_holds_two_and_loads_each_model_once() -> None:
    loads: Counter[str] = Counter()
    lock = threading.Lock()

    def loader(key: str, device: str | None = None, progress: Any = None) -> Any:
        time.sleep(0.05)  # long enough for every thread to ask before the first load is done
        with lock:
            loads[key] += 1
        return SimpleNamespace(name=key)

    cache = ModelCache("cpu", capacity=2, loader=loader)
    with ThreadPoolExecutor(USERS) as pool:
        got = list(pool.map(lambda _: cache.get("a"), range(USERS)))
    assert loads == {"a": 1} and all(m is got[0] for m in got)  # one load, one shared model

    cache.get("b")
    cache.get("a")  # a is now the more recently used
    cache.get("c")  # so b goes
    assert list(cache._models) == ["a", "c"]
    cache.get("a")
    cache.get("b")
    assert loads == {"a": 1, "b": 2, "c": 1}  # b came back by loading again; a never left


def test_three_models_for_three_users_keep_two_loaded_and_serve_everyone(
    app, tiny_path: Path, tmp_path: Path
) -> None:
    demo, url = app
    models = the_models(demo)
    assert models.capacity == 2
    folders = [shutil.copytree(tiny_path, tmp_path / f"model-{name}") for name in "abc"]
    clients = [Client(url, verbose=False) for _ in folders]
    for client, folder in zip(clients, folders, strict=True):
        out = client.predict(str(folder), api_name="/load_model")
        assert f"{folder.name} is loaded" in out[0]
        assert len(models._models) <= 2
    assert list(models._models) == [str(folders[1]), str(folders[2])]
    # The first user's model was dropped: their next analysis loads it again, and is theirs.
    for client, folder in zip(clients, folders, strict=True):
        status = client.predict("A prompt", 0, 0, False, api_name="/analyze")[0]
        assert f"with {folder.name}:" in status, status
        assert len(models._models) <= 2


def test_a_session_keeps_a_bounded_number_of_steps_without_their_attention_rows() -> None:
    session = Session(model="bundled")
    for position in range(3 * KEPT_STEPS):
        row = np.full((2, 3, position + 1), 1 / (position + 1), dtype=np.float32)  # [layer, head, key]
        table = pd.DataFrame({"token": ["a"], "token_id": [0], "prob": [1.0]})
        remember(session, StepResult(position, 0, "a", "a", 1.0, 1.0, table, table, 0.0, row, False, None))
    assert KEPT_STEPS == 64
    assert sorted(session.steps) == list(range(2 * KEPT_STEPS, 3 * KEPT_STEPS))
    # The row shown is always the newest token's, which the generation keeps (last_pattern).
    assert all(step.pattern.size == 0 for step in session.steps.values())
