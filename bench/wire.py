"""The app served on 127.0.0.1, and a client that speaks to it as the browser does.

`Browserlike` joins Gradio's queue (`/gradio_api/queue/join`) and reads the event stream
(`/gradio_api/queue/data`) with one session hash, so gr.State carries over between calls just as
in a tab. It counts the bytes of that stream as they arrive: the bytes the browser is sent.
Gradio does not compress the stream (its Brotli/gzip middleware skips paths without a file
extension), so those are the bytes on the wire, less HTTP framing.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

API = "/gradio_api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Served:
    url: str
    demo: Any  # the gr.Blocks


@contextmanager
def served(loaded: Any) -> Iterator[Served]:
    """build_app around an already loaded model, launched in this process on a free port."""
    from explorer.ui import build_app, launch

    demo = build_app(loaded=loaded)
    port = free_port()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Served(f"http://127.0.0.1:{port}", demo)
    finally:
        demo.close()


@dataclass(frozen=True)
class Reply:
    outputs: list[Any]  # one value per output component of the event
    output_ids: list[int]  # the component id of each
    stream_bytes: int  # every byte of the event stream, heartbeats and progress included
    seconds: float  # from the join request to the completed message


class Browserlike:
    """One browser tab's worth of API calls: a session hash, the queue, the event stream."""

    def __init__(self, url: str, timeout: float = 600) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=timeout)
        self.session_hash = uuid.uuid4().hex[:11]
        self.config = self.client.get("/config").json()
        self.components = {c["id"]: c for c in self.config["components"]}
        self.dependencies = {d["api_name"]: d for d in self.config["dependencies"] if d.get("api_name")}

    def close(self) -> None:
        self.client.close()

    def component_id(self, elem_id: str) -> int:
        for cid, component in self.components.items():
            if component.get("props", {}).get("elem_id") == elem_id:
                return int(cid)
        raise KeyError(elem_id)

    def inputs(self, api_name: str, values: dict[str, Any]) -> list[Any]:
        """The event's inputs as the page would send them: `values` by elem_id, otherwise each
        component's current value; gr.State goes as null (the server keeps it per session)."""
        data: list[Any] = []
        for cid in self.dependencies[api_name]["inputs"]:
            props = self.components[cid].get("props", {})
            if self.components[cid].get("type") == "state":
                data.append(None)
            else:
                data.append(values.get(props.get("elem_id"), props.get("value")))
        return data

    def call(self, api_name: str, values: dict[str, Any] | None = None) -> Reply:
        dep = self.dependencies[api_name]
        body = {
            "data": self.inputs(api_name, values or {}),
            "fn_index": dep["id"],
            "session_hash": self.session_hash,
            "event_data": None,
            "trigger_id": (dep.get("targets") or [[None]])[0][0],
        }
        start = time.perf_counter()
        joined = self.client.post(f"{API}/queue/join", json=body)
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        n_bytes, done = 0, None
        with self.client.stream("GET", f"{API}/queue/data", params={"session_hash": self.session_hash}) as r:
            buffer = b""
            for chunk in r.iter_raw():
                n_bytes += len(chunk)
                buffer += chunk
                while b"\n\n" in buffer:
                    line, buffer = buffer.split(b"\n\n", 1)
                    if not line.startswith(b"data:"):
                        continue
                    message = json.loads(line[5:])
                    if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                        done = message
                if done is not None and not buffer:
                    break
        seconds = time.perf_counter() - start
        if done is None or not done.get("success"):
            raise RuntimeError(f"{api_name} failed: {done and done.get('output')}")
        return Reply(done["output"]["data"], list(dep["outputs"]), n_bytes, seconds)


def plot_of(reply: Reply, meta_prefix: str) -> tuple[Any, int] | None:
    """(the figure value named `meta_prefix`…, its bytes as sent): a gr.Plot whose layout.meta
    starts with it, or a canvas heatmap payload (figures/grid.py, alone or in an update) whose
    meta does."""
    for value in reply.outputs:
        if not isinstance(value, dict):
            continue
        meta: Any = None
        if value.get("type") == "plotly" and isinstance(value.get("plot"), str):
            meta = json.loads(value["plot"]).get("layout", {}).get("meta")
        else:
            payload = value.get("value") if value.get("__type__") == "update" else value
            meta = payload.get("meta") if isinstance(payload, dict) and "kind" in payload else None
        if isinstance(meta, str) and meta.startswith(meta_prefix):
            return value, len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    return None


class InProcess:
    """One session's calls to an event's own Python function, as Gradio makes them but without
    the queue and the wire: the handler, then each output component's `postprocess` and the
    JSON encoding of the result. gr.State inputs hold this session's values."""

    def __init__(self, demo: Any) -> None:
        self.demo = demo
        self.states: dict[int, Any] = {}

    def _fn(self, api_name: str) -> Any:
        return next(f for f in self.demo.fns.values() if f.api_name == api_name)

    def call(self, api_name: str, values: dict[str, Any] | None = None) -> int:
        """Runs the event; returns the bytes of its encoded outputs."""
        import copy

        import gradio as gr
        import orjson

        fn = self._fn(api_name)
        args = []
        for block in fn.inputs:
            if isinstance(block, gr.State):
                args.append(self.states.setdefault(block._id, copy.deepcopy(block.value)))
            else:
                args.append((values or {}).get(block.elem_id, block.value))
        out = fn.fn(*args)
        encoded = []
        for block, value in out.items():
            if isinstance(block, gr.State):
                self.states[block._id] = value
                continue
            if isinstance(value, dict) and value.get("__type__") == "update":
                encoded.append(value)
                continue
            if isinstance(value, str) and "ae-error" in value:
                raise RuntimeError(f"{api_name} failed: {value}")
            data = block.postprocess(value)
            encoded.append(data.model_dump() if hasattr(data, "model_dump") else data)
        return len(orjson.dumps(encoded, option=orjson.OPT_SERIALIZE_NUMPY, default=str))
