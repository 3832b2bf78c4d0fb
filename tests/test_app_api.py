"""The app's API through gradio_client, against a launched app on the tiny random checkpoint."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from browser_util import array, heatmap, plot, serve

from explorer.analysis.arithmetic import STEPS
from explorer.errors import ModelLoadError
from explorer.figures.grid import decode

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

PROMPT = "When Mary and John went to the store, John gave a drink to"


def steps_in(outputs: tuple) -> dict[str, dict]:
    """Each step's card HTML and table, keyed by step title, from a selection response."""
    found: dict[str, dict] = {}
    current = None
    for value in outputs:
        if isinstance(value, str) and "ae-step-title" in value:
            current = html.unescape(re.search(r"</span>(.*?)</div>", value).group(1))
            found[current] = {"card": value}
        elif current and isinstance(value, str) and "ae-table" in value:
            found[current]["table"] = value
    return found


def column(table: str, name: str) -> list:
    """One column of a step's HTML table, numbers as floats."""
    headers = [html.unescape(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    values = [html.unescape(row[headers.index(name)]) for row in rows]
    return [v if v == "−∞" else float(v) for v in values]


def step_pct(text: str, label: str) -> float:
    return float(re.search(label + r" = ([0-9.]+)%", text).group(1)) / 100


# --- analysis -----------------------------------------------------------------------------


def test_analyze_counts_tokens_and_draws_every_head(client: Client, tiny) -> None:
    out = client.predict(PROMPT, 0, 0, False, api_name="/analyze")
    n = len(tiny.tokenizer(PROMPT)["input_ids"])
    status, tokens_html, overview = out[0], out[1], heatmap(out[2])
    assert f"Analyzed {n} tokens" in status
    assert tokens_html.count("data-pos=") == n
    assert overview["kind"] == "overview"
    assert overview["shape"][:2] == [tiny.n_layer, tiny.n_head]
    assert out[2]["props"]["outline"] == [0, 0]  # the open head, outlined
    detail = heatmap(out[6])
    assert detail["kind"] == "head" and detail["title"] == "Layer 0, head 0"
    assert decode(detail).shape == (n, n)


def test_breakdown_steps_match_the_model(client: Client) -> None:
    client.predict(PROMPT, 0, 0, False, api_name="/analyze")
    out = client.predict(1, 2, 3, False, api_name="/breakdown")
    assert heatmap(out[2])["title"] == "Layer 1, head 2" and out[-1]["props"]["outline"] == [1, 2]
    steps = steps_in(out)
    assert list(steps) == [step.title for step in STEPS]  # every step, labels from STEPS
    for title in ("Query Q_i", "Keys K_j", "Softmax: the attention row", "Context C_i"):
        assert "✓ matches the model" in steps[title]["card"], title
    weights = column(steps["Softmax: the attention row"]["table"], "weight")
    assert len(weights) == 4  # keys 0..3 for query 3
    assert sum(weights) == pytest.approx(1.0, abs=1e-3)
    masked = column(steps["Causal mask"]["table"], "masked score")
    assert masked[4:] == ["−∞"] * len(masked[4:]) and len(masked) > 4


def test_breakdown_before_analyze_says_what_to_do(client: Client) -> None:
    out = client.predict(0, 0, 0, False, api_name="/breakdown")
    assert "Analyze a prompt first" in out[0]


def test_empty_prompt_is_a_message_not_a_traceback(client: Client) -> None:
    out = client.predict("   ", 0, 0, False, api_name="/analyze")
    assert "The prompt is empty" in out[0]
    assert "Traceback" not in out[0]


def test_a_refused_prompt_keeps_the_previous_analysis(client: Client) -> None:
    """A new analysis lets the old one go only once its prompt has tokenized."""
    client.predict(PROMPT, 0, 0, False, api_name="/analyze")
    refused = client.predict("   ", 0, 0, False, api_name="/analyze")
    assert "The prompt is empty" in refused[0]
    out = client.predict(0, 0, 3, False, api_name="/breakdown")
    assert "Analyze a prompt first" not in out[0]


def test_sessions_are_separate(app, tiny) -> None:
    a, b = Client(app[1], verbose=False), Client(app[1], verbose=False)
    a.predict("one two three four five six", 0, 0, False, api_name="/analyze")
    b.predict("Hello", 0, 0, False, api_name="/analyze")
    out = a.predict(0, 0, 5, False, api_name="/breakdown")  # position 5 exists only in a's prompt
    assert "query token 5" in out[4]
    last = len(tiny.tokenizer("Hello")["input_ids"]) - 1
    assert (
        f"query token {last}" in b.predict(0, 0, 5, False, api_name="/breakdown")[4]
    )  # clamped to b's prompt


# --- generation ---------------------------------------------------------------------------


def settings(greedy: bool = True) -> tuple:
    return (greedy, 1.0, 0, 1.0, 0)  # greedy, temperature, top_k, top_p, seed


def test_step_chooses_the_most_likely_token_when_greedy(client: Client) -> None:
    out = client.predict(PROMPT, *settings(), 0, -1, api_name="/step")
    status, text, step_md, dist = out[0], out[1], out[2], plot(out[3])
    assert "Generating from the prompt" in status
    assert text.count("ae-gen") == 1
    p = step_pct(step_md, "model p")
    assert 0 < p <= 1
    model_probs = array(dist["data"][0]["x"])
    assert p == pytest.approx(float(model_probs.max()), abs=1e-4)  # greedy: the top bar is chosen
    assert "chosen" in json.dumps(dist["layout"].get("annotations", []))
    assert len(json.dumps(out)) < 50_000  # a step's update stays small


def test_run_streams_one_update_per_token(client: Client) -> None:
    job = client.submit(PROMPT, 5, *settings(greedy=False), 0, -1, api_name="/run")
    updates = list(job)
    assert len(updates) == 5
    final = job.outputs()[-1]
    assert final[1].count("ae-gen") == 5
    probabilities = [step_pct(u[2], "model p") for u in updates]
    assert all(0 < p <= 1 for p in probabilities)


def test_force_rewind_and_errors(client: Client) -> None:
    client.predict(PROMPT, *settings(), 0, -1, api_name="/step")
    forced = client.predict(" the", PROMPT, *settings(), 0, -1, api_name="/force")
    assert "forced by you" in forced[2]
    assert forced[1].count("ae-gen") == 2 and "ae-forced" in forced[1]
    too_long = client.predict("two words", PROMPT, *settings(), 0, -1, api_name="/force")
    assert "not one" in too_long[0]
    rewound = client.predict(0, -1, api_name="/rewind")
    assert "1 generated tokens remain" in rewound[0]
    assert rewound[1].count("ae-gen") == 1
    client.predict(0, -1, api_name="/rewind")
    nothing = client.predict(0, -1, api_name="/rewind")
    assert "Nothing to rewind" in nothing[0]


def test_steps_keep_the_session_config_the_same_size(app, client: Client) -> None:
    """Every step answers every output: Gradio keeps a copy of a component for each omitted one."""
    for _ in range(2):  # the first sets the selectors' ranges, which the second reads
        client.predict(PROMPT, *settings(), 0, -1, api_name="/step")
    blocks = app[0].state_holder[client.session_hash].blocks_config.blocks
    before = len(blocks)
    for _ in range(3):
        client.predict(PROMPT, *settings(), 0, -1, api_name="/step")
    client.predict(0, -1, api_name="/rewind")
    assert len(blocks) == before


def test_rewind_shows_the_kept_steps_attention_again(client: Client) -> None:
    def bars(out: tuple) -> np.ndarray:
        return array(plot(out[4])["data"][0]["y"])  # the new token's attention row

    first = client.predict(PROMPT, *settings(), 0, -1, api_name="/step")
    client.predict(PROMPT, *settings(), 0, -1, api_name="/step")
    rewound = client.predict(0, -1, api_name="/rewind")
    assert len(bars(rewound)) == len(bars(first))
    np.testing.assert_allclose(bars(rewound), bars(first), atol=1e-6)


def test_top_k_limits_the_sampled_distribution(client: Client) -> None:
    out = client.predict(PROMPT, False, 1.0, 3, 1.0, 0, 0, -1, api_name="/step")  # top-k 3
    model, warped = (array(trace["x"]) for trace in plot(out[3])["data"])
    assert len(warped) == 3 and len(model) >= 3
    assert warped.sum() == pytest.approx(1.0, abs=1e-4)  # renormalised over the three
    assert step_pct(out[2], "after settings p") >= step_pct(out[2], "model p")


def test_out_of_range_settings_are_refused(client: Client) -> None:
    with pytest.raises(AppError, match="minimum"):
        client.predict(PROMPT, False, 1.0, 0, 0.0, 0, 0, -1, api_name="/step")  # top-p 0


def test_concurrent_users_get_their_own_numbers(app, tiny) -> None:
    """Capture hooks sit on the one shared model: concurrent requests must not see each other's."""
    prompts = ["one two three", "a much longer prompt with quite a few more tokens in it", PROMPT]
    expected = [len(tiny.tokenizer(p)["input_ids"]) for p in prompts]

    def work(prompt: str) -> list[str]:
        client = Client(app[1], verbose=False)
        statuses = [client.predict(prompt, 1, 1, False, api_name="/analyze")[0] for _ in range(3)]
        statuses.append(client.predict(prompt, *settings(), 0, -1, api_name="/step")[0])
        return statuses

    with ThreadPoolExecutor(len(prompts)) as pool:
        results = list(pool.map(work, prompts))
    for statuses, n in zip(results, expected, strict=True):
        assert all(f"Analyzed {n} tokens" in s for s in statuses[:3]), statuses
        assert "Generating from the prompt" in statuses[3]


# --- models and modes -----------------------------------------------------------------------


def test_a_model_that_cannot_load_keeps_the_previous_one(client: Client, tmp_path: Path) -> None:
    out = client.predict(str(tmp_path / "missing"), api_name="/load_model")
    assert "previous model keeps serving" in out[0]
    assert "Analyzed" in client.predict(PROMPT, 0, 0, False, api_name="/analyze")[0]


def test_hosted_mode_allows_listed_models_only(tiny, tiny_path: Path) -> None:
    with pytest.raises(ModelLoadError), serve(str(tiny_path), hosted=True):
        pass
    with serve(None, hosted=True, loaded=tiny) as (_, url):
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="not in the list of choices"):  # the picker refuses it
            client.predict(str(tiny_path), api_name="/load_model")
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert {"/analyze", "/breakdown", "/step", "/run", "/force", "/rewind"} <= set(api)


def test_space_entry_point_builds_the_app(tiny_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    code = "import app; print(type(app.demo).__name__, app.HOSTED)"
    env = {**os.environ, "EXPLORER_MODEL": str(tiny_path), "SPACE_ID": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("Blocks False")


def test_cli_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "explorer", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for flag in ("--model", "--host", "--port", "--share", "--device", "--hosted"):
        assert flag in result.stdout


# --- a model loaded while the server already answers (the command line's way) -------------


def test_a_model_loaded_in_the_background_serves_once_ready(tiny_path: Path, monkeypatch) -> None:
    import threading
    import time

    import explorer.ui.shell as app_module

    calls: list[tuple[str, str]] = []
    real = app_module.load_model

    def slow_load(source, device=None, progress=None):
        calls.append((source, threading.current_thread().name))
        time.sleep(1.0)  # requests made meanwhile wait for this load, not start their own
        return real(source, device=device, progress=progress)

    monkeypatch.setattr(app_module, "load_model", slow_load)
    with serve(str(tiny_path), load_in_background=True) as (demo, url):
        out = Client(url, verbose=False).predict(PROMPT, 0, 0, False, api_name="/analyze")
        assert "Analyzed " in out[0] and f"with {tiny_path.name}:" in out[0]
    assert calls == [(str(tiny_path), "ae-preload")]  # once, by the server as it started


def test_a_model_that_fails_to_load_in_the_background_is_explained(tiny_path: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_path, tmp_path / "broken"))
    (folder / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 64)
    with serve(str(folder), load_in_background=True) as (demo, url):  # the folder looks complete
        out = Client(url, verbose=False).predict(PROMPT, 0, 0, False, api_name="/analyze")
    assert "could not be read" in out[0]


def test_a_bad_model_name_fails_before_any_loading(tmp_path: Path) -> None:
    from explorer.ui import build_app

    with pytest.raises(ModelLoadError, match="No model folder"):
        build_app(model=str(tmp_path / "nothing-here"), device="cpu", load_in_background=True)


def test_the_command_line_refuses_a_device_that_is_not_there(tiny_path: Path) -> None:
    """Loading waits for the server only on the CPU or the automatic device: a named one that
    this machine lacks still stops the command with a message, before it serves anything."""
    result = subprocess.run(
        [sys.executable, "-m", "explorer", "--model", str(tiny_path), "--device", "cuda:99"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"),
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Cannot run the model on the device 'cuda:99'" in result.stderr
