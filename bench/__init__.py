"""Benchmarks for issue #5: the explorer measured against the bare forward pass and bertviz.

    python -m bench            # every figure, a markdown table; a few minutes
    python -m bench --quick    # fewer repeats
    python -m bench --only server,payload

Every timed figure is a ratio against a baseline measured in the same process, interleaved
(baseline, candidate, candidate, baseline, ...) and summarised by medians, because the machines
this runs on are shared and absolute timings drift. Nothing here is a test: no figure fails a build.
"""
