"""load_model: eager attention, safetensors only, fast offline failures, clear refusals."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import explorer.model.loading as loading
from explorer import ExplorerError, ModelLoadError, load_model

SOURCE_DIR = Path(loading.__file__).resolve().parent
BUNDLED_READY = (loading.bundled_path() / "model.safetensors").is_file()


def copy_checkpoint(tiny_path: Path, tmp_path: Path, name: str = "model") -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny_path, folder)
    return folder


class _OpensAFile:
    """Unpickling this creates `marker`: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_booby_trapped_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_OpensAFile(marker)))


# --------------------------------------------------------------------------- a good folder


def test_tiny_folder_loads_with_eager_attention_in_eval_mode_on_cpu(tiny, tiny_path):
    model = tiny.model
    assert model.config._attn_implementation == "eager"
    assert not model.training
    assert not any(module.training for module in model.modules())
    assert tiny.device == "cpu"
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert tiny.name == tiny_path.name
    assert str(tiny_path) in tiny.reason
    assert tiny.source == str(tiny_path)
    assert not tiny.is_bundled
    assert (tiny.n_layer, tiny.n_head, tiny.n_ctx) == (2, 4, 64)
    assert tiny.config["model_type"] == "gpt2"
    assert len(tiny.tokenizer) == model.config.vocab_size


def test_weights_are_the_models_own_parameters(tiny):
    w = tiny.weights
    model = tiny.model
    assert len(w.layers) == 2
    assert (w.n_head, w.d_head) == (4, 8)
    block = model.transformer.h[1]
    np.testing.assert_array_equal(w.layers[1].c_attn_w, block.attn.c_attn.weight.detach().numpy())
    np.testing.assert_array_equal(w.layers[1].fc_proj_b, block.mlp.c_proj.bias.detach().numpy())
    np.testing.assert_array_equal(w.unembed, model.transformer.wte.weight.detach().numpy())  # tied
    assert w.layers[0].c_attn_w.shape == (32, 96)
    assert w.layers[0].scaling == pytest.approx(1 / np.sqrt(8))
    assert w.eps == model.config.layer_norm_epsilon
    assert w.activation == "gelu_new"


def test_relative_folder_path_loads(tiny_path, monkeypatch):
    monkeypatch.chdir(tiny_path.parent)
    loaded = load_model(f"./{tiny_path.name}", device="cpu")
    assert loaded.name == tiny_path.name
    assert loaded.model.config._attn_implementation == "eager"


def test_progress_reports_rise_from_0_to_1(tiny_path):
    calls: list[tuple[float, str]] = []
    load_model(str(tiny_path), device="cpu", progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert all(isinstance(m, str) and m for _, m in calls)
    assert "ready" in calls[-1][1]


def test_loading_never_allows_remote_code():
    for path in SOURCE_DIR.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"trust_remote_code\s*=\s*True", text), path.name


# --------------------------------------------------------------------------- the default model


@pytest.mark.parametrize("source", [None, "", "auto", "default"])
def test_default_is_the_bundled_model_when_gpt2_is_not_cached(monkeypatch, source):
    monkeypatch.setattr(loading, "_cached_hub_folder", lambda repo_id: None)
    name, where, reason, needs_network = loading.resolve(source)
    assert (name, where, needs_network) == ("demo-gpt2", loading.bundled_path(), False)
    assert "gpt2 is not in the local cache" in reason and "bundled" in reason


def test_default_is_gpt2_when_it_is_cached(monkeypatch, tiny_path):
    # The tiny folder stands in for a cached gpt2 snapshot: load_model(None) takes it, offline.
    monkeypatch.setattr(
        loading, "_cached_hub_folder", lambda repo_id: tiny_path if repo_id == "gpt2" else None
    )
    loaded = load_model(None, device="cpu")
    assert loaded.name == "gpt2"
    assert "local Hugging Face cache" in loaded.reason
    assert loaded.source == str(tiny_path)
    assert loaded.model.config._attn_implementation == "eager"


def test_default_load_uses_the_bundled_weights_or_says_they_are_missing(monkeypatch):
    monkeypatch.setattr(loading, "_cached_hub_folder", lambda repo_id: None)
    if BUNDLED_READY:
        loaded = load_model(None, device="cpu")
        assert loaded.name == "demo-gpt2" and loaded.is_bundled
        assert "gpt2 is not in the local cache" in loaded.reason
        assert loaded.model.config._attn_implementation == "eager"
    else:
        with pytest.raises(ModelLoadError, match="bundled demo model has no weights"):
            load_model(None, device="cpu")
        with pytest.raises(ModelLoadError, match="bundled demo model has no weights"):
            load_model("bundled", device="cpu")


@pytest.mark.parametrize("source", ["bundled", "demo-gpt2", "demo"])
def test_bundled_aliases_resolve_to_the_bundled_folder(source):
    name, where, reason, needs_network = loading.resolve(source)
    assert (name, where, needs_network) == ("demo-gpt2", loading.bundled_path(), False)
    assert "bundled" in reason


def test_cached_hub_id_resolves_to_its_snapshot_without_network(monkeypatch, tiny_path):
    monkeypatch.setattr(loading, "_cached_hub_folder", lambda repo_id: tiny_path)
    name, where, reason, needs_network = loading.resolve("distilgpt2")
    assert (name, where, needs_network) == ("distilgpt2", tiny_path, False)
    assert "cache" in reason


# --------------------------------------------------------------------------- the hub, offline


def test_uncached_hub_id_fails_fast_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a connection while HF_HUB_OFFLINE is set")

    monkeypatch.setattr(loading.socket, "create_connection", no_network)
    with pytest.raises(ModelLoadError) as err:
        load_model("attention-explorer-tests/not-a-cached-model", device="cpu")
    message = str(err.value)
    assert "not in the local Hugging Face cache" in message
    assert "hub cannot be reached" in message and "offline" in message
    assert "bundled" in message  # says what to do instead


def test_unreachable_hub_fails_fast_with_a_short_timeout(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(loading, "_cached_hub_folder", lambda repo_id: None)
    timeouts: list[float] = []

    def unreachable(address, timeout=None):
        timeouts.append(timeout)
        raise OSError("network is unreachable")

    monkeypatch.setattr(loading.socket, "create_connection", unreachable)
    with pytest.raises(ModelLoadError, match="hub cannot be reached"):
        load_model("gpt2-medium", device="cpu")
    # Fast by construction: one short probe, no retries (how long it takes is not asserted).
    assert len(timeouts) == 1 and timeouts[0] is not None and timeouts[0] <= 3


def test_hub_reachable_is_false_offline_without_trying(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading.socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    assert loading.hub_reachable() is False


def test_unknown_hub_model_is_explained():
    text = loading._explain("no-such/model", OSError("no-such/model is not a valid model identifier"))
    assert text == "There is no model called 'no-such/model' on the Hugging Face Hub."
    assert loading._explain("x", OSError("disk full\nmore")) == "Cannot load 'x': disk full"


# --------------------------------------------------------------------------- refusals


def test_pickle_only_folder_is_refused_without_unpickling(tiny_path, tmp_path):
    folder = copy_checkpoint(tiny_path, tmp_path)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    write_booby_trapped_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), device="cpu")
    message = str(err.value)
    assert "pickle" in message and "pytorch_model.bin" in message and "safetensors" in message
    assert not marker.exists()


def test_safetensors_are_used_even_beside_a_pickle(tiny, tiny_path, tmp_path):
    folder = copy_checkpoint(tiny_path, tmp_path)
    marker = tmp_path / "unpickled"
    write_booby_trapped_pickle(folder / "pytorch_model.bin", marker)
    loaded = load_model(str(folder), device="cpu")
    assert not marker.exists()
    for ours, theirs in zip(loaded.model.parameters(), tiny.model.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_folder_without_weights_is_refused(tiny_path, tmp_path):
    folder = copy_checkpoint(tiny_path, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model weights"):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_safetensors_is_a_model_load_error(tiny_path, tmp_path, damage):
    folder = copy_checkpoint(tiny_path, tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\x07" * 4096, "empty": b""}[damage]
    )
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder), device="cpu")
    assert folder.name in str(err.value)


@pytest.mark.parametrize("model_type", ["llama", "bert", None])
def test_other_model_types_are_refused(tiny_path, tmp_path, model_type):
    folder = copy_checkpoint(tiny_path, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="GPT-2-type models only"):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"gpt2"'])
def test_corrupt_config_is_refused(tiny_path, tmp_path, content):
    folder = copy_checkpoint(tiny_path, tmp_path)
    (folder / "config.json").write_text(content)
    with pytest.raises(ModelLoadError, match="config.json is corrupt"):
        load_model(str(folder), device="cpu")


def test_folder_without_config_is_refused(tiny_path, tmp_path):
    folder = copy_checkpoint(tiny_path, tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(folder), device="cpu")


def test_folder_without_tokenizer_is_a_model_load_error(tiny_path, tmp_path):
    folder = copy_checkpoint(tiny_path, tmp_path)
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
    ):
        (folder / name).unlink(missing_ok=True)
    # transformers 5 would quietly build an empty tokenizer that turns every prompt into no tokens.
    with pytest.raises(ModelLoadError, match="has no tokenizer"):
        load_model(str(folder), device="cpu")


def test_tokenizer_larger_than_the_model_is_refused(tiny_path, tmp_path):
    folder = copy_checkpoint(tiny_path, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] -= 10  # the embedding no longer has rows for the last tokens
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize(
    "source", ["/nonexistent/attention-explorer-model", "./no-such-folder", "~/no-such-folder"]
)
def test_missing_folder_is_a_model_load_error(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("a missing folder is not a reason to go to the network")

    monkeypatch.setattr(loading.socket, "create_connection", no_network)
    with pytest.raises(ModelLoadError, match="No model folder"):
        load_model(source, device="cpu")


def test_a_file_is_not_a_model_folder(tiny_path):
    with pytest.raises(ModelLoadError, match="No model folder"):
        load_model(str(tiny_path / "config.json"), device="cpu")


def test_model_load_error_is_an_explorer_error():
    assert issubclass(ModelLoadError, ExplorerError)
    assert issubclass(ExplorerError, ValueError)


def test_a_path_object_is_a_folder(tiny_path, tmp_path):
    loaded = load_model(tiny_path, device="cpu")
    assert loaded.name == tiny_path.name and loaded.source == str(tiny_path)
    with pytest.raises(ModelLoadError, match="No model folder"):
        load_model(tmp_path / "missing", device="cpu")


@pytest.mark.parametrize("source", ["a/b/c", "bad id!", "-gpt2", "x" * 200])
def test_invalid_hub_ids_are_explained_without_network(source, monkeypatch):
    monkeypatch.setattr(loading.socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    with pytest.raises(ModelLoadError, match="neither a model folder here nor a Hugging Face model id"):
        load_model(source, device="cpu")


@pytest.mark.parametrize("source", [5, 2.5, ["gpt2"], b"gpt2"])
def test_a_source_that_is_not_text_is_a_model_load_error(source):
    with pytest.raises(ModelLoadError, match="hub id or a folder path"):
        load_model(source, device="cpu")


@pytest.mark.parametrize("device", ["gpu", "cuda:99", "no-such-device"])
def test_an_unusable_device_is_a_model_load_error(tiny_path, device):
    with pytest.raises(ModelLoadError, match="Cannot run the model on the device"):
        load_model(str(tiny_path), device=device)


def test_bundled_model_loads_eager_and_says_so(bundled):
    assert bundled.name == "demo-gpt2" and bundled.is_bundled
    assert bundled.model.config._attn_implementation == "eager" and not bundled.model.training
    assert bundled.reason == "The bundled demo model was asked for."
    assert len(bundled.tokenizer) == bundled.model.config.vocab_size


def test_a_plan_names_the_model_without_torch() -> None:
    """What a server shows before the weights load (build_app(load_in_background=True)): found
    without importing torch or transformers, which take seconds."""
    code = (
        "import sys; from explorer.model.loading import plan_model; p = plan_model('bundled'); "
        "print(p.name, p.is_bundled, p.is_local, p.n_layer, p.n_head, p.n_ctx, "
        "'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["demo-gpt2", "True", "True", "4", "8", "1024", "False", "False"]


@pytest.mark.parametrize(
    ("fault", "says"),
    [("missing", "No model folder"), ("pickle", "has only pickle weights"), ("bert", "'bert' model")],
)
def test_a_plan_refuses_what_load_model_refuses(tiny_path, tmp_path, fault, says):
    folder = shutil.copytree(tiny_path, tmp_path / "m")
    if fault == "missing":
        shutil.rmtree(folder)
    elif fault == "pickle":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    else:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {"model_type": "bert"}))
    for attempt in (loading.plan_model, load_model):
        with pytest.raises(ModelLoadError, match=re.escape(says)):
            attempt(str(folder))


def test_a_plan_and_its_load_agree(tiny, tiny_path):
    plan = loading.plan_model(str(tiny_path))
    assert (plan.name, plan.reason, plan.is_bundled) == (tiny.name, tiny.reason, tiny.is_bundled)
    assert (plan.n_layer, plan.n_head, plan.n_ctx) == (tiny.n_layer, tiny.n_head, tiny.n_ctx)


@pytest.mark.parametrize(
    ("change", "says"),
    [({"n_layer": 3}, "do not match its config.json"), ({"n_embd": 64, "n_head": 2}, "do not match")],
)
def test_a_config_the_weights_do_not_fill_is_refused(tiny_path, tmp_path, change, says):
    """More layers in config.json than in the weights would load as random layers, shown as the model's."""
    folder = copy_checkpoint(tiny_path, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(ModelLoadError, match=says):
        load_model(str(folder), device="cpu")
