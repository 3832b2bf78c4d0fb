"""`python -m bench` puts its table on top of bench/RESULTS.md and keeps the notes below it."""

from __future__ import annotations

from bench.__main__ import with_latest_run


def test_a_run_goes_on_top_and_replaces_only_the_previous_run() -> None:
    notes = "# Benchmark results\n\n## Session 5\n\nwhat changed, by hand\n"
    first = with_latest_run(notes, "# Benchmark results\n\n`python -m bench` on day 1\n\n| a | b |\n")
    assert first == (
        "# Benchmark results\n\n## Latest run\n\n`python -m bench` on day 1\n\n| a | b |\n\n"
        "## Session 5\n\nwhat changed, by hand\n"
    )
    second = with_latest_run(first, "# Benchmark results\n\n`python -m bench` on day 2\n")
    assert "day 1" not in second and "day 2" in second
    assert second.endswith("## Session 5\n\nwhat changed, by hand\n")
    assert (
        with_latest_run("", "# Benchmark results\n\nrun\n") == "# Benchmark results\n\n## Latest run\n\nrun\n"
    )
