"""Load: a lecture's students against one hosted server (`python -m explorer --hosted --model
bundled`) on 127.0.0.1, and where the server's CPU time per event goes.

The server is its own process; the students are one other process (`python -m bench.load
--client SPEC`) running asyncio with httpx, so the clients' own CPU is not the server's. Each
student behaves as a browser tab does, with one session hash throughout:

1. opens the page (GET /, GET /config) and the heartbeat stream, and joins the page's load
   events (restore → analyze the default prompt → select);
2. after a moment's reading, analyzes the lecture's example (most students) or a text of its own;
3. once the whole class has (the teacher's "now the Generate tab"), opens the Generate tab and
   presses Step `steps` times, with think time between;
4. closes the tab (the heartbeat), which frees its session on the server.

Events join Gradio's queue (POST /gradio_api/queue/join) and their messages come on one
/gradio_api/queue/data stream per student, open while any of its events is pending. The page's
follow-up events are sent as Gradio's page sends them: `.then`/`.success` chains, the listeners of
a gr.State the reply changed (`changed_state_ids`), and the `.change` listeners of components
whose value the reply changed; js-only listeners run in the page and are not sent.

`--breakdown` times the Analyze and Step handlers' parts in one process instead (no HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, Row, Settings, fmt_bytes, fmt_s
from bench.wire import API, free_port

STUDENTS = (8, 32, 64)
MAX_STUDENTS = 64
STEPS = 10
THINK_S = (1.0, 3.0)  # between a reply and the student's next click
STAGGER_S = 8.0  # arrivals spread over this long, and so are the first steps
PHASE_S = 180.0  # one class size, page load to the last step
REQUEST_S = 60.0  # a reply slower than this counts as an error
SHARED = 0.8  # the share of students analyzing the lecture's example
MAX_CHAIN = 6  # follow-ups of follow-ups: a guard against a loop of change events
GOALS = {32: {"analyze": 3.0, "step": 1.5}}  # p95 seconds; and 0 errors at every size
RSS_GOAL = 2e9  # the server's peak RSS budget (README, Limits)
LOAD_DIR = RESULTS_DIR / "load"


# --- the server ------------------------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def server_clock(pid: int) -> dict[str, float]:
    """The server's CPU seconds (user + system, every thread) and RSS now."""
    import psutil

    cpu = psutil.Process(pid).cpu_times()
    return {"cpu": cpu.user + cpu.system, **_proc_status(pid), "t": time.monotonic()}


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    """The CLI in hosted mode on a free port; returns once the page answers."""
    import httpx

    port = free_port()
    log = open(LOAD_DIR / "server.log", "w")  # noqa: SIM115 (lives as long as the child)
    child = subprocess.Popen(
        [sys.executable, "-m", "explorer", "--hosted", "--model", "bundled", "--port", str(port)],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the server exited with {child.returncode}; see {LOAD_DIR / 'server.log'}")
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return child, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    child.terminate()
    raise RuntimeError("the server did not answer in 180 s")


# --- one student: a browser tab's requests ----------------------------------------------------------


@dataclass
class Record:
    kind: str  # analyze, step, load (the page's load chain), page (GET / + /config), follow-up
    name: str  # the event's function (config dependency api_name)
    start: float
    seconds: float
    ok: bool
    error: str = ""
    duration: float | None = None  # Gradio's own timing of the function


@dataclass
class Page:
    """The config's parts a tab needs: components' values, dependencies, who follows whom."""

    config: dict[str, Any]
    deps: dict[int, dict[str, Any]] = field(init=False)
    types: dict[int, str] = field(init=False)

    def __post_init__(self) -> None:
        self.deps = {d["id"]: d for d in self.config["dependencies"]}
        self.types = {c["id"]: c.get("type", "") for c in self.config["components"]}

    def initial_values(self) -> dict[int, Any]:
        return {c["id"]: c.get("props", {}).get("value") for c in self.config["components"]}

    def by_name(self, api_name: str) -> dict[str, Any]:
        return next(d for d in self.deps.values() if d.get("api_name") == api_name)

    def by_trigger(self, event: str) -> list[tuple[dict[str, Any], int]]:
        return [(d, t[0]) for d in self.deps.values() for t in d["targets"] if t[1] == event]

    def component(self, elem_id: str) -> int:
        for c in self.config["components"]:
            if c.get("props", {}).get("elem_id") == elem_id:
                return int(c["id"])
        raise KeyError(elem_id)

    def followers(self, dep: dict[str, Any], success: bool, changed: set[int]) -> list[tuple[dict, int]]:
        """What the page sends after `dep` completes: its chain, and listeners of what changed."""
        out = []
        for d in self.deps.values():
            if d.get("trigger_after") == dep["id"] and (success or not d.get("trigger_only_on_success")):
                out.append((d, (dep["targets"] or [[None]])[0][0]))
            for target, event in d["targets"]:
                if target in changed and (event == "change" or self.types.get(target) == "state"):
                    out.append((d, target))
        return [(d, t) for d, t in out if d.get("backend_fn")]


class Student:
    def __init__(self, client: Any, page: Page, deadline: float) -> None:
        self.client, self.page, self.deadline = client, page, deadline
        self.session_hash = uuid.uuid4().hex[:11]
        self.values = page.initial_values()
        self.records: list[Record] = []
        self.waiting: dict[str, asyncio.Future] = {}  # event id → its completed message
        self.stream: asyncio.Task | None = None
        self.tasks: set[asyncio.Task] = set()  # follow-ups in flight

    # The queue/data stream: opened after a join (the session's message queue exists by then), kept
    # while any event is pending (closing it cancels them), reopened if the server closed it first.
    async def _read_stream(self) -> None:
        while self.waiting:
            params = {"session_hash": self.session_hash}
            async with self.client.stream("GET", f"{API}/queue/data", params=params) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    waiter = self.waiting.get(message.get("event_id") or "")
                    if message.get("msg") == "process_completed" and waiter is not None:
                        self.waiting.pop(message["event_id"])
                        if not waiter.done():
                            waiter.set_result(message)
                    if message.get("msg") == "close_stream":
                        break

    async def call(self, dep: dict, trigger: Any, kind: str, event_data: Any = None, depth: int = 0) -> bool:
        """One event, join to completed message; its follow-ups go on in the background."""
        data = [None if self.page.types.get(c) == "state" else self.values.get(c) for c in dep["inputs"]]
        body = {
            "data": data,
            "event_data": event_data,
            "fn_index": dep["id"],
            "trigger_id": trigger,
            "session_hash": self.session_hash,
        }
        start = time.monotonic()
        record = Record(kind, dep.get("api_name") or str(dep["id"]), start, 0.0, False)
        self.records.append(record)
        try:
            timeout = min(REQUEST_S, max(0.1, self.deadline - start))
            message = await asyncio.wait_for(self._join(body), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            record.error = "timeout"
            return False
        except Exception as err:  # noqa: BLE001 (every failure is a counted error)
            record.error = f"{type(err).__name__}: {err}"[:200]
            return False
        finally:
            record.seconds = time.monotonic() - start
        output = message.get("output") or {}
        record.ok = bool(message.get("success"))
        record.duration = output.get("duration")
        changed = self._take_outputs(dep, output.get("data") or [])
        changed |= set(output.get("changed_state_ids") or [])
        if not record.ok:
            record.error = str(output.get("error"))[:200]
        elif any(isinstance(v, str) and "ae-error" in v for v in output.get("data") or []):
            record.ok, record.error = False, "an error message in the reply"
        if depth < MAX_CHAIN:
            for follower, trig in self.page.followers(dep, record.ok, changed):
                task = asyncio.create_task(self.call(follower, trig, "follow-up", depth=depth + 1))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        return record.ok

    async def _join(self, body: dict) -> dict:
        joined = await self.client.post(f"{API}/queue/join", json=body)
        joined.raise_for_status()
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[joined.json()["event_id"]] = waiter
        if self.stream is None or self.stream.done():
            self.stream = asyncio.create_task(self._read_stream())
        return await waiter

    def _take_outputs(self, dep: dict, data: list) -> set[int]:
        """Apply a reply's values; the components whose value changed."""
        changed = set()
        for cid, value in zip(dep["outputs"], data, strict=False):
            if self.page.types.get(cid) == "state":
                continue
            if isinstance(value, dict) and value.get("__type__") == "update":
                if "value" not in value:
                    continue
                value = value["value"]
            if value != self.values.get(cid):
                self.values[cid] = value
                changed.add(cid)
        return changed

    async def settle(self) -> None:
        """Wait for the follow-ups still running (as the page would, before it is idle)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def set_value(self, elem_id: str, value: Any) -> None:
        self.values[self.page.component(elem_id)] = value


async def _heartbeat(client: Any, session_hash: str) -> None:
    """The page's heartbeat stream; when it closes the server runs the unload event (frees state)."""
    async with client.stream("GET", f"{API}/heartbeat/{session_hash}") as r:
        async for _ in r.aiter_bytes():
            pass


async def _one_student(i: int, spec: dict, page: Page, client: Any, barrier: Any, deadline: float) -> Student:
    rng = random.Random(spec["seed"] + i)
    me = Student(client, page, deadline)
    await asyncio.sleep(rng.uniform(0, spec["stagger_s"]))
    start = time.monotonic()
    ok = True
    try:
        for path in ("/", "/config"):
            (await client.get(path)).raise_for_status()
    except Exception as err:  # noqa: BLE001
        ok = False
        me.records.append(Record("page", "GET / + /config", start, time.monotonic() - start, False, str(err)))
    if ok:
        me.records.append(Record("page", "GET / + /config", start, time.monotonic() - start, True))
    beat = asyncio.create_task(_heartbeat(client, me.session_hash))
    try:
        for dep, trigger in page.by_trigger("load"):
            await me.call(dep, trigger, "load")
        await me.settle()
        await asyncio.sleep(rng.uniform(*spec["think_s"]))
        me.set_value("ae-prompt", spec["prompts"][i])
        analyze = page.by_name("analyze")
        await me.call(analyze, analyze["targets"][0][0], "analyze")
        await me.settle()
        await barrier.wait()
        # The Generate tab opens: the page sends the tab bar's select listeners.
        await asyncio.sleep(rng.uniform(0, spec["stagger_s"]))
        tab = {"index": 2, "value": "Generate", "id": "generate", "selected": True}
        for dep, trigger in page.by_trigger("select"):
            if trigger == page.component("ae-tabs") and dep.get("backend_fn"):
                await me.call(dep, trigger, "follow-up", event_data=tab)
        await me.settle()
        step = page.by_name("step")
        for _ in range(spec["steps"]):
            await asyncio.sleep(rng.uniform(*spec["think_s"]))
            await me.call(step, step["targets"][0][0], "step")
        await me.settle()
    finally:
        beat.cancel()
    return me


class Barrier:
    """All students analyzed (or gave up) before the class moves on to Generate."""

    def __init__(self, n: int, on_open: Any) -> None:
        self.n, self.count, self.on_open = n, 0, on_open
        self.event = asyncio.Event()

    async def wait(self) -> None:
        self.count += 1
        if self.count >= self.n:
            self.on_open()
            self.event.set()
        await self.event.wait()


async def run_class(spec: dict) -> dict:
    import httpx

    n = min(int(spec["students"]), MAX_STUDENTS)
    pid = spec["server_pid"]
    limits = httpx.Limits(max_connections=4 * n + 8, max_keepalive_connections=2 * n + 8)
    timeout = httpx.Timeout(REQUEST_S, read=None)  # streams wait between messages; calls have their own
    clocks = {"start": server_clock(pid)}
    async with httpx.AsyncClient(base_url=spec["url"], limits=limits, timeout=timeout) as client:
        page = Page((await client.get("/config")).json())
        barrier = Barrier(n, lambda: clocks.__setitem__("analyzed", server_clock(pid)))
        deadline = time.monotonic() + spec["phase_s"]
        tasks = [
            asyncio.create_task(_one_student(i, spec, page, client, barrier, deadline)) for i in range(n)
        ]
        done, pending = await asyncio.wait(tasks, timeout=spec["phase_s"])
        clocks.setdefault("analyzed", clocks["start"])
        clocks["end"] = server_clock(pid)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    records = []
    for task in done:
        if task.exception() is None:
            records += [asdict(r) for r in task.result().records]
        else:
            records.append(asdict(Record("student", "crashed", 0, 0, False, repr(task.exception())[:200])))
    unfinished = len(pending)
    return {"students": n, "records": records, "unfinished": unfinished, "clocks": clocks}


# --- the class sizes, driven from `python -m bench` --------------------------------------------------


def shared_prompt() -> tuple[str, Any]:
    """The lecture's example: the longest in assets/examples.json (233 tokens); and the tokenizer."""
    from transformers import AutoTokenizer

    from explorer.model.loading import bundled_path

    examples = json.loads((Path(__file__).resolve().parent.parent / "assets" / "examples.json").read_text())
    return max(examples, key=lambda e: len(e["prompt"]))["prompt"], AutoTokenizer.from_pretrained(
        str(bundled_path())
    )


def prompts(n: int, seed: int = 0) -> list[str]:
    """The example for most students (SHARED), an own text of the same length for the rest."""
    from bench.common import prompt

    shared, tokenizer = shared_prompt()
    n_tokens = len(tokenizer(shared)["input_ids"])
    rng = random.Random(seed)
    return [shared if rng.random() < SHARED else prompt(tokenizer, n_tokens, seed=100 + i) for i in range(n)]


def run_client(spec: dict) -> dict:
    path = LOAD_DIR / f"spec-{spec['students']}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--client", str(path)],
        capture_output=True,
        text=True,
        timeout=spec["phase_s"] + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the client failed: {done.stderr[-500:]}")
    return json.loads(done.stdout.splitlines()[-1])


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summarize(result: dict) -> dict:
    """Per kind: count, errors, p50/p95/max; server CPU per event and RSS from the clocks."""
    recs = result["records"]
    c = result["clocks"]
    kinds: dict[str, dict] = {}
    for kind in ("page", "load", "analyze", "follow-up", "step", "student"):
        mine = [r for r in recs if r["kind"] == kind]
        if not mine:
            continue
        ok = [r["seconds"] for r in mine if r["ok"]]
        kinds[kind] = {
            "count": len(mine),
            "errors": len(mine) - len(ok),
            "p50": pct(ok, 0.5),
            "p95": pct(ok, 0.95),
            "max": max(ok, default=None),
            "first_error": next((r["error"] for r in mine if not r["ok"]), ""),
        }
    stage1 = [r for r in recs if r["kind"] in ("page", "load", "analyze") or r["start"] < c["analyzed"]["t"]]
    stage2 = [r for r in recs if r not in stage1]
    steps = [r for r in stage2 if r["kind"] == "step" and r["ok"]]
    span = max((r["start"] + r["seconds"] for r in steps), default=0) - min(
        (r["start"] for r in steps), default=0
    )
    by_name: dict[str, list[float]] = {}
    for r in recs:
        if r["duration"] is not None:
            by_name.setdefault(r["name"], []).append(r["duration"])
    return {
        "students": result["students"],
        "unfinished": result["unfinished"],
        "kinds": kinds,
        "cpu_stage1_s": c["analyzed"]["cpu"] - c["start"]["cpu"],
        "cpu_stage2_s": c["end"]["cpu"] - c["analyzed"]["cpu"],
        "events_stage1": sum(r["kind"] not in ("page",) for r in stage1),
        "events_stage2": len(stage2),
        "steps": len(steps),
        # Gradio's own timing of the functions (wall, under load ≈ their CPU plus waiting for a core):
        # what the server's CPU spent beyond it went to the queue, HTTP, SSE and JSON framing.
        "fn_stage1_s": sum(r["duration"] or 0 for r in stage1),
        "fn_stage2_s": sum(r["duration"] or 0 for r in stage2),
        "step_throughput": len(steps) / span if span > 0 else None,
        "wall_s": c["end"]["t"] - c["start"]["t"],
        "rss_end": c["end"]["VmRSS"],
        "rss_start": c["start"]["VmRSS"],
        "peak": c["end"]["VmHWM"],
        "fn_ms": {k: 1000 * statistics.mean(v) for k, v in sorted(by_name.items())},
        "fn_count": {k: len(v) for k, v in sorted(by_name.items())},
    }


def rows_of(s: dict, spec: dict) -> list[Row]:
    n, kinds = s["students"], s["kinds"]
    errors = sum(v["errors"] for v in kinds.values()) + s["unfinished"]
    # Server CPU per user action: stage 1 (page load + Analyze, follow-ups included) per student,
    # stage 2 (the tab switch + Steps, follow-ups included) per step.
    cpu = {
        "analyze": (s["cpu_stage1_s"] / max(1, n), "per student (page load + Analyze)"),
        "step": (s["cpu_stage2_s"] / max(1, s["steps"]), "per Step"),
    }
    out = []
    for kind in ("analyze", "step"):
        v = kinds.get(kind)
        if v is None:
            continue
        target = GOALS.get(n, {}).get(kind)
        met = (v["p95"] is not None and v["p95"] <= target and errors == 0) if target else None
        out.append(
            Row(
                f"load: {kind} p50 / p95 / max",
                f"{n} students",
                f"{fmt_s(v['p50'])} / {fmt_s(v['p95'])} / {fmt_s(v['max'])}",
                f"{v['count']} events, {v['errors']} errors",
                f"server CPU {cpu[kind][0] * 1000:.0f} ms {cpu[kind][1]}",
                f"p95 ≤ {fmt_s(target)}, 0 errors" if target else "—",
                met,
            )
        )
    notes = [
        f"{kind}: {d['count']} events, {d['errors']} errors, p50 {fmt_s(d['p50'])}, p95 {fmt_s(d['p95'])}"
        + (f" (first error: {d['first_error']})" if d["first_error"] else "")
        for kind, d in kinds.items()
    ]
    fns = ", ".join(f"{name} {ms:.0f} ms ×{s['fn_count'][name]}" for name, ms in s["fn_ms"].items())
    out.append(
        Row(
            "load: errors, steps/s, server RSS",
            f"{n} students",
            f"{errors} errors; {s['step_throughput'] or 0:.1f} steps/s; RSS {fmt_bytes(s['rss_end'])}, "
            f"peak {fmt_bytes(s['peak'])}",
            f"{s['events_stage1']} + {s['events_stage2']} queue events in {s['wall_s']:.0f} s",
            f"server CPU {s['cpu_stage1_s']:.1f} s + {s['cpu_stage2_s']:.1f} s "
            f"(in the functions: {s['fn_stage1_s']:.1f} s + {s['fn_stage2_s']:.1f} s)",
            f"0 errors, peak ≤ {fmt_bytes(RSS_GOAL)}" if n >= 64 else f"peak ≤ {fmt_bytes(RSS_GOAL)}",
            s["peak"] <= RSS_GOAL and (errors == 0 or n < 64),
            "; ".join(notes) + f"; {s['unfinished']} students unfinished at {spec['phase_s']:.0f} s; "
            f"Gradio's mean time per function: {fns}",
        )
    )
    return out


def rows(settings: Settings, sizes: tuple[int, ...] = STUDENTS, **overrides: Any) -> list[Row]:
    LOAD_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    child, url = start_server(root)
    out: list[Row] = []
    try:
        base = {
            "url": url,
            "server_pid": child.pid,
            "steps": STEPS,
            "think_s": THINK_S,
            "stagger_s": STAGGER_S,
            "phase_s": PHASE_S,
            "seed": 0,
        } | overrides
        warm = run_client(base | {"students": 1, "prompts": prompts(1), "steps": 2, "stagger_s": 0})
        if any(not r["ok"] for r in warm["records"]):
            raise RuntimeError(f"the warm-up failed: {warm['records']}")
        for n in sizes:
            n = min(n, MAX_STUDENTS)
            spec = base | {"students": n, "prompts": prompts(n, seed=n)}
            summary = summarize(run_client(spec))
            (LOAD_DIR / f"summary-{n}.json").write_text(json.dumps(summary, indent=1))
            out += rows_of(summary, spec)
            time.sleep(3)  # the closed tabs' unload events free their sessions
    finally:
        child.terminate()
        child.wait(timeout=30)
    out += breakdown_rows()
    return out


# --- where the time goes: the handlers' parts, in one process -----------------------------------------


def _timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median CPU milliseconds of `fn()` (after one warm-up) and its last result."""
    import gc

    result = fn()
    cpu = []
    for _ in range(repeats):
        gc.collect()
        c0 = time.process_time()
        result = fn()
        cpu.append(time.process_time() - c0)
    return 1000 * statistics.median(cpu), result


def _encoded(*figs: Any) -> None:
    """What Gradio does with a figure output: a gr.Plot's postprocess (the figure's JSON), or a
    canvas heatmap's payload (a dict, sent as it is), then orjson."""
    import gradio as gr
    import orjson

    plot = gr.Plot()
    for fig in figs:
        value = fig if isinstance(fig, dict) else plot.postprocess(fig).model_dump()
        orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def breakdown(repeats: int = 15) -> dict[str, dict[str, float]]:
    """CPU ms of each part of one Analyze (the example, hosted limits, bundled model) and of one
    Step after it, and of the whole handler with Gradio's postprocess and JSON (bench.wire.InProcess)."""
    import copy

    import gradio as gr

    from bench.wire import InProcess
    from explorer import views
    from explorer.analysis.arithmetic import breakdown as qkv_breakdown
    from explorer.figures import grid, live
    from explorer.model.capture import analyze
    from explorer.model.generation import GenerationSession
    from explorer.model.loading import load_model
    from explorer.ui import build_app, steps_tab
    from explorer.ui.generate_events import attention_figure
    from explorer.ui.state import HEADS_TAB, Limits, Session

    limits = Limits.for_mode(True)
    demo = build_app(model="bundled", device="cpu", hosted=True)
    loaded = load_model("bundled", device="cpu")
    text, _ = shared_prompt()
    a_ms: dict[str, float] = {}
    a_ms["forward (capture.analyze)"], analysis = _timed(
        lambda: analyze(loaded, text, max_tokens=limits.max_prompt_tokens), repeats
    )
    q = analysis.n_pos - 1
    a_ms["figures (overview + head detail)"], figs = _timed(
        lambda: (grid.analysis_overview_grid(analysis), grid.head_detail_grid(analysis, 0, 0, q)[0]), repeats
    )
    a_ms["Q/K/V breakdown + selection text"], bd = _timed(
        lambda: (b := qkv_breakdown(analysis, 0, 0, q), views.selection_markdown(b))[0], repeats
    )
    with gr.Blocks():
        tab = steps_tab.build_steps_tab()
    a_ms["step cards (skipped while their tab is hidden)"], _ = _timed(
        lambda: steps_tab.step_updates(tab.steps, bd), repeats
    )
    a_ms["serialization (postprocess + JSON of the figures)"], _ = _timed(lambda: _encoded(*figs), repeats)

    calls = InProcess(demo)
    session_block = next(b for b in demo.fns[_fn_id(demo, "analyze")].inputs if isinstance(b, gr.State))
    # A page opens on the heads tab (view_state.restore): the Q/K/V cards wait until it is shown.
    first = copy.deepcopy(session_block.value)
    first.shown_tab = HEADS_TAB
    calls.states[session_block._id] = first
    a_ms["whole handler + postprocess + JSON (in-process)"], _ = _timed(
        lambda: calls.call("analyze", {"ae-prompt": text}), repeats
    )

    s_ms: dict[str, float] = {}
    gen = GenerationSession(loaded, text, max_new_tokens=limits.max_new_tokens)
    s_ms["model step (GenerationSession.step)"], result = _timed(gen.step, repeats)
    session = Session(model="bundled")
    s_ms["figures (distribution, timeline, attention row)"], step_figs = _timed(
        lambda: (
            live.step_distribution(result, len(gen.generated)),
            live.timeline(gen),
            attention_figure(session, gen, result, 0, None),
        ),
        repeats,
    )
    s_ms["serialization (postprocess + JSON of the figures)"], _ = _timed(
        lambda: _encoded(*step_figs), repeats
    )
    s_ms["whole handler + postprocess + JSON (in-process)"], _ = _timed(
        lambda: calls.call("step", {"ae-prompt": text}), repeats
    )
    return {"analyze": a_ms, "step": s_ms}


def _fn_id(demo: Any, api_name: str) -> int:
    return next(i for i, f in demo.fns.items() if f.api_name == api_name)


def breakdown_rows() -> list[Row]:
    parts = breakdown()
    out = []
    for kind, ms in parts.items():
        whole = ms[next(k for k in ms if k.startswith("whole"))]
        detail = "; ".join(f"{name} {v:.1f} ms" for name, v in ms.items())
        out.append(
            Row(
                f"load: {kind} handler, CPU by part (in-process)",
                "the example, hosted",
                f"{whole:.0f} ms whole",
                "—",
                "—",
                "—",
                None,
                detail,
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", help="(internal) run the students of this spec file; print JSON")
    parser.add_argument("--students", default=",".join(map(str, STUDENTS)), help="class sizes, ≤ 64")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--stagger", type=float, default=STAGGER_S, help="arrivals spread over (s)")
    parser.add_argument("--think", default=f"{THINK_S[0]},{THINK_S[1]}", help="think time range (s)")
    parser.add_argument("--phase", type=float, default=PHASE_S, help="wall-time bound per class (s)")
    parser.add_argument("--breakdown", action="store_true", help="only the in-process breakdown")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, here and in the server")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # as `python -m bench` does; the server inherits it
        os.environ.setdefault(var, str(args.threads))
    if args.client:
        print(json.dumps(asyncio.run(run_class(json.loads(Path(args.client).read_text())))))
        return 0
    from bench.common import markdown

    if args.breakdown:
        print(markdown(breakdown_rows()))
        return 0
    think = tuple(float(x) for x in args.think.split(","))
    sizes = tuple(min(int(x), MAX_STUDENTS) for x in args.students.split(","))
    overrides = {
        "steps": args.steps,
        "stagger_s": args.stagger,
        "think_s": think,
        "phase_s": min(args.phase, PHASE_S),
    }
    print(markdown(rows(Settings(), sizes, **overrides)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
