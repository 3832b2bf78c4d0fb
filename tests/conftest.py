"""Shared fixtures: a tiny seeded random GPT-2 for exact checks, the bundled model for behaviour."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

from explorer.model.loading import bundled_path

BUNDLED_READY = (bundled_path() / "model.safetensors").is_file()
needs_bundled = pytest.mark.skipif(not BUNDLED_READY, reason="the bundled demo model is not trained yet")


def make_tiny_checkpoint(
    folder: Path, seed: int = 0, n_layer: int = 2, n_head: int = 4, n_embd: int = 32, n_positions: int = 64
) -> Path:
    """A random GPT-2 with the bundled tokenizer, saved as a normal safetensors checkpoint."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_path()))
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    # Larger than default init so attention patterns are far from uniform and bugs show.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny(tiny_path: Path):
    from explorer import load_model

    return load_model(str(tiny_path), device="cpu")


@pytest.fixture(scope="session")
def bundled():
    if not BUNDLED_READY:
        pytest.skip("the bundled demo model is not trained yet")
    from explorer import load_model

    return load_model("bundled", device="cpu")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, never a downloaded one), shared by a test module."""
    from browser_util import CHROMIUM_ARGS, require_chromium

    executable = require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def app(tiny_path: Path):
    """The app serving the tiny model, for a module's API tests: (demo, url)."""
    from browser_util import serve

    with serve(str(tiny_path)) as (demo, url):
        yield demo, url


@pytest.fixture
def client(app):
    """A gradio_client on `app` (modules that serve another model define their own)."""
    from gradio_client import Client

    return Client(app[1], verbose=False)
