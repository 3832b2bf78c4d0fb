"""`python -m bench`: run the benchmarks and print the table (also bench/results/latest.md, and
on top of bench/RESULTS.md, above the notes of earlier runs)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

BENCHES = (
    "analyze",
    "bytes",
    "steps",
    "browser",
    "firstlook",
    "run",
    "attribution",
    "coldstart",
    "memory",
    "load",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and no bertviz page past 128 tokens"
    )
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}"
    )
    parser.add_argument("--sizes", default="32,128,512,1024", help="prompt lengths in tokens")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: the cores are shared)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; write no results files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before torch is imported, so that the server's worker threads get the same count.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2

    from bench import common

    settings = common.Settings(
        quick=args.quick, sizes=tuple(int(s) for s in args.sizes.split(",")), threads=args.threads
    )
    common.set_threads(settings.threads)
    start = time.perf_counter()
    rows: list[common.Row] = []

    shown = 0

    def log(message: str) -> None:
        """Progress on stderr, with the rows measured since the last message."""
        nonlocal shown
        for line in common.markdown(rows[shown:]).splitlines()[2:]:
            print(line, file=sys.stderr)
        shown = len(rows)
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    def guarded(name: str, run: Callable[[], Any], empty: Any) -> Any:
        """One benchmark's rows; a failure becomes a row that says so, and the rest still run."""
        try:
            return run()
        except Exception as err:  # noqa: BLE001
            log(f"{name} failed: {type(err).__name__}: {err}")
            rows.append(
                common.Row(name, "—", "failed", "—", "—", "—", None, f"{type(err).__name__}: {err}"[:300])
            )
            return empty

    if {"analyze", "bytes", "steps", "browser"} & set(chosen):
        from bench import analyze, browser, steps
        from bench.wire import served

        log("building the GPT-2-small-sized model")
        loaded = common.gpt2_small()
        with served(loaded) as app:
            replies: dict = {}
            if "analyze" in chosen:
                log("analyze: server time against the bare forward pass")
                timed, replies = guarded(
                    "analyze", lambda: analyze.time_rows(settings, loaded, app), ([], {})
                )
                rows += timed
            if "bytes" in chosen:
                log("bytes: the overview against bertviz's model_view")
                rows += guarded("bytes", lambda: analyze.bytes_rows(settings, loaded, app, replies), [])
            if "steps" in chosen:
                log("steps: one generation step against model.generate")
                rows += guarded("steps", lambda: steps.rows(settings, loaded, app), [])
            if "browser" in chosen:
                log("browser: Analyze in Chromium against bertviz's page")
                rows += guarded("browser", lambda: browser.rows(settings, loaded, app.url), [])
    if "run" in chosen:
        log("run: Run and Stop in Chromium, on the bundled and the GPT-2-small-sized model")
        rows += guarded("run", lambda: run_rows(settings), [])
    if "firstlook" in chosen:
        from bench import firstlook

        log("first look: page open, Analyze and clicks in Chromium, fresh contexts, warm server")
        rows += guarded("firstlook", lambda: firstlook.rows(settings, common.gpt2_small()), [])
    if "attribution" in chosen:
        from bench import attribution

        log("attribution: logit_attribution against analyze")
        rows += guarded("attribution", lambda: attribution.rows(settings, common.gpt2_small()), [])
    if "coldstart" in chosen:
        from bench import coldstart

        log("cold start: attention-explorer to the first analysis drawn")
        rows += guarded("coldstart", lambda: coldstart.rows(settings), [])
    if "memory" in chosen:
        from bench import memory

        log("memory: peak RSS at 1024 tokens, and over 200 steps")
        rows += guarded("memory", lambda: memory.rows(settings), [])
    if "load" in chosen:
        from bench import load

        log("load: 8, 32 and 64 students against one hosted server")
        rows += guarded("load", lambda: load.rows(settings), [])
    log("done")

    report = render(rows, settings, time.perf_counter() - start, argv)
    print(report)
    if not args.no_write:
        common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (common.RESULTS_DIR / "latest.md").write_text(report)
        results = common.BENCH_DIR / "RESULTS.md"
        results.write_text(with_latest_run(results.read_text() if results.exists() else "", report))
    return 0


def run_rows(settings: Any) -> list:
    from bench import common, run
    from bench.wire import served
    from explorer.model.loading import load_model

    bundled, small = load_model("bundled", device="cpu"), common.gpt2_small()
    with served(bundled) as a, served(small) as b:
        return run.rows(settings, {"bundled": (bundled, a.demo, a.url), "gpt2-small": (small, b.demo, b.url)})


TITLE = "# Benchmark results\n"
LATEST = "## Latest run\n"


def with_latest_run(results: str, report: str) -> str:
    """RESULTS.md with `report` as its latest run, on top; the notes below it (what each session
    changed and measured, by hand) are kept."""
    rest = results.removeprefix(TITLE).lstrip("\n")
    if rest.startswith(LATEST):  # the previous latest run gives way
        following = rest.find("\n## ", len(LATEST))
        rest = rest[following + 1 :] if following >= 0 else ""
    run = report.removeprefix(TITLE).strip("\n")
    return f"{TITLE}\n{LATEST}\n{run}\n\n{rest}".rstrip("\n") + "\n"


def render(rows: list, settings, seconds: float, argv: list[str] | None) -> str:
    from bench import common

    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"`{command}` on {stamp}, {seconds:.0f} s; Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs (shared), torch threads {settings.threads}.",
            "",
            f"Model: {common.MODEL_NOTE}",
            "",
            common.markdown(rows),
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
