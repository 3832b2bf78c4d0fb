"""Load a GPT-2 checkpoint the safe way: eager attention, safetensors only, no remote code.

The only module, with capture.py and generation.py, that touches torch and transformers.
"""

from __future__ import annotations

import json
import os
import reprlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from explorer.errors import ModelLoadError
from explorer.model.weights import ModelWeights, extract_weights

BUNDLED = "bundled"
BUNDLED_NAME = "demo-gpt2"
HUB_MODELS = ("gpt2", "distilgpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
Progress = Callable[[float, str], None]
# The weights' dtype: float32 by default; bfloat16 or float16 halve the memory of a large model
# (its numbers then differ from float32's by ~1e-2, and the breakdown says so).
DTYPES = ("float32", "bfloat16", "float16")
DTYPE_ENV = "EXPLORER_DTYPE"  # the default dtype where none is passed (the command line's --dtype)


def assets_dir() -> Path:
    """`assets/` beside the package (a checkout) or inside it (an installed wheel)."""
    if env := os.environ.get("EXPLORER_ASSETS"):
        return Path(env)
    package = Path(__file__).resolve().parent.parent  # explorer/
    for candidate in (package / "assets", package.parent / "assets"):
        if candidate.is_dir():
            return candidate
    return package.parent / "assets"


# Weights a GPT-2 checkpoint may leave out: the LM head is tied to the token embedding, and the
# causal-mask buffers are rebuilt.
_DERIVED = ("lm_head.weight", ".attn.bias", ".attn.masked_bias")


def check_weights(name: str, info: dict[str, Any]) -> None:
    """Refuse a checkpoint whose weights do not fill its config: transformers would start the
    missing layers from random numbers, and the app would show them as if they were the model's."""
    missing = [key for key in info.get("missing_keys", ()) if not key.endswith(_DERIVED)]
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or mismatched:
        shown = ", ".join(str(k if isinstance(k, str) else k[0]) for k in [*missing, *mismatched][:4])
        more = len(missing) + len(mismatched) - 4
        raise ModelLoadError(
            f"{name}'s weights do not match its config.json: {shown}"
            + (f" and {more} more" if more > 0 else "")
            + " are missing or of another shape. Check that the config and the weights belong together."
        )


def bundled_path() -> Path:
    return assets_dir() / "models" / BUNDLED_NAME


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # GPT2LMHeadModel, in eval mode, eager attention
    tokenizer: Any
    name: str
    reason: str
    source: str = ""
    device: str = "cpu"
    config: dict = field(default_factory=dict, repr=False)

    @property
    def n_layer(self) -> int:
        return int(self.model.config.n_layer)

    @property
    def n_head(self) -> int:
        return int(self.model.config.n_head)

    @property
    def n_ctx(self) -> int:
        return int(self.model.config.n_positions)

    @property
    def is_bundled(self) -> bool:
        return self.source == BUNDLED

    @property
    def dtype(self) -> str:
        """The weights' dtype: float32, bfloat16 or float16."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    @cached_property
    def weights(self) -> ModelWeights:
        return extract_weights(self.model)


def pick_device(device: str | None) -> str:
    if device and device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _cached_hub_folder(repo_id: str) -> Path | None:
    """The snapshot folder of a hub model already in the local cache, if it is complete."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    config = try_to_load_from_cache(repo_id, "config.json")
    weights = try_to_load_from_cache(repo_id, "model.safetensors")
    if isinstance(config, str) and isinstance(weights, str):
        return Path(config).parent
    return None


def hub_reachable(timeout: float = 1.5) -> bool:
    """A quick yes/no, so that an unreachable hub fails in a second, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_folder(path: Path) -> dict:
    """Refuse anything but a complete GPT-2 safetensors checkpoint, and say why."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{path} has no config.json: it is not a Hugging Face checkpoint folder.")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path}/config.json is corrupt: {err}") from err
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}/config.json is corrupt: it holds no settings object.")
    if config.get("model_type") != "gpt2":
        raise ModelLoadError(
            f"{path} holds a {config.get('model_type')!r} model; Attention Explorer shows GPT-2-type models only."
        )
    has_safe = any(path.glob("*.safetensors"))
    pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
    if not has_safe:
        if pickled:
            raise ModelLoadError(
                f"{path} has only pickle weights ({', '.join(pickled)}). Pickle files can run code "
                "when loaded, so they are refused: convert the checkpoint to safetensors."
            )
        raise ModelLoadError(f"{path} has no model weights (model.safetensors is missing).")
    return config


def _check_repo_id(source: str) -> None:
    try:
        from huggingface_hub.utils import validate_repo_id
    except ImportError:  # pragma: no cover
        return
    try:
        validate_repo_id(source)
    except ValueError as err:
        raise ModelLoadError(
            f"{reprlib.repr(source)} is neither a model folder here nor a Hugging Face model id (such as gpt2)."
        ) from err


def resolve(source: str | os.PathLike | None) -> tuple[str, Path | str, str, bool]:
    """(name, folder or hub id, reason, needs_network) for a model source."""
    if isinstance(source, os.PathLike):
        source = str(os.fspath(source))
    if source is not None and not isinstance(source, str):
        raise ModelLoadError(f"A model is named by a hub id or a folder path, not {type(source).__name__}.")
    if source in (None, "", "auto", "default"):
        cached = _cached_hub_folder("gpt2")
        if cached is not None:
            return "gpt2", cached, "gpt2 was found in the local Hugging Face cache.", False
        return (
            BUNDLED_NAME,
            bundled_path(),
            "gpt2 is not in the local cache and the hub may be unreachable, so the bundled demo model is used.",
            False,
        )
    if source in (BUNDLED, BUNDLED_NAME, "demo"):
        return BUNDLED_NAME, bundled_path(), "The bundled demo model was asked for.", False
    path = Path(source).expanduser()
    try:
        is_folder = path.is_dir()
        is_local = is_folder or path.exists() or source.startswith((".", "/", "~"))
    except (OSError, ValueError):  # a name too long, or one the file system cannot hold
        is_folder, is_local = False, source.startswith((".", "/", "~"))
    if is_local:
        if not is_folder:
            raise ModelLoadError(f"No model folder at {reprlib.repr(source)}.")
        return path.name, path, f"Loaded from the local folder {path}.", False
    _check_repo_id(source)
    cached = _cached_hub_folder(source)
    if cached is not None:
        return source, cached, f"{source} was found in the local Hugging Face cache.", False
    return source, source, f"{source} was downloaded from the Hugging Face Hub.", True


@dataclass(frozen=True)
class ModelPlan:
    """What load_model would load, found without torch or the weights: a server can answer
    (and a bad name fail) in the seconds that importing torch and transformers takes."""

    name: str
    where: Path | str  # a local folder, or a hub id to download
    reason: str
    needs_network: bool
    config: dict = field(default_factory=dict, repr=False)  # config.json; {} until downloaded

    @property
    def is_local(self) -> bool:
        return isinstance(self.where, Path)

    @property
    def is_bundled(self) -> bool:
        return self.name == BUNDLED_NAME and self.where == bundled_path()

    @property
    def n_layer(self) -> int:
        return int(self.config.get("n_layer", 0))

    @property
    def n_head(self) -> int:
        return int(self.config.get("n_head", 0))

    @property
    def n_ctx(self) -> int:
        return int(self.config.get("n_positions", 0))


def plan_model(source: str | os.PathLike | None = None) -> ModelPlan:
    """Resolve `source` and run every check that needs no weights read (see load_model)."""
    name, where, reason, needs_network = resolve(source)
    if needs_network and not hub_reachable():
        raise ModelLoadError(
            f"Cannot load {source!r}: it is not in the local Hugging Face cache and the hub cannot be "
            "reached from here (offline, or HF_HUB_OFFLINE is set). Download it where there is a "
            "network, or pick the bundled demo model."
        )
    if where == bundled_path() and not (where / "model.safetensors").is_file():
        raise ModelLoadError(
            f"The bundled demo model has no weights in {where}: this install is incomplete. Train them "
            "with tools/train_demo_model.py, or load a GPT-2 checkpoint folder."
        )
    config = check_folder(where) if isinstance(where, Path) else {}
    return ModelPlan(name=name, where=where, reason=reason, needs_network=needs_network, config=config)


def check_dtype(dtype: str | None) -> str:
    """The weights' dtype by name: `dtype`, else EXPLORER_DTYPE, else float32."""
    chosen = dtype or os.environ.get(DTYPE_ENV, "").strip() or "float32"
    if chosen not in DTYPES:
        raise ModelLoadError(
            f"The weights' dtype must be one of {', '.join(DTYPES)} (got {reprlib.repr(chosen)})."
        )
    return chosen


def load_model(
    source: str | os.PathLike | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    dtype: str | None = None,
) -> LoadedModel:
    """Load a GPT-2 model and its tokenizer.

    source: None (gpt2 if cached locally, else the bundled demo model), "bundled", a hub id
    (gpt2, distilgpt2, gpt2-medium, …) or a local checkpoint folder. dtype: float32 (the default,
    or EXPLORER_DTYPE), bfloat16 or float16, for machines short of memory.
    """
    weights_dtype = check_dtype(dtype)
    report = progress or (lambda fraction, message: None)
    report(0.0, f"Resolving {source or 'the default model'} …")
    plan = plan_model(source)
    name, where, reason, needs_network = plan.name, plan.where, plan.reason, plan.needs_network

    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    chosen = pick_device(device)
    local_only = not needs_network
    report(0.2, f"Loading {name} {'(downloading)' if needs_network else ''} …".replace("  ", " "))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if needs_network:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(where))
            if config.model_type != "gpt2":
                raise ModelLoadError(
                    f"{source} is a {config.model_type!r} model; Attention Explorer shows GPT-2-type models only."
                )
        loaded_info: Any = GPT2LMHeadModel.from_pretrained(  # (model, info) with output_loading_info
            str(where),
            attn_implementation="eager",  # SDPA returns no attention weights
            use_safetensors=True,  # never unpickle
            dtype=getattr(torch, weights_dtype),
            local_files_only=local_only,
            output_loading_info=True,
        )
        model, info = loaded_info
        check_weights(name, info)
        report(0.8, "Loading the tokenizer …")
        tokenizer = AutoTokenizer.from_pretrained(str(where), local_files_only=local_only)
        # With its files missing, transformers builds an empty tokenizer instead of failing.
        if tokenizer.vocab_size == 0:
            raise ModelLoadError(
                f"{name} has no tokenizer: the folder needs tokenizer.json, or vocab.json and merges.txt."
            )
        if len(tokenizer) > model.config.vocab_size:
            raise ModelLoadError(
                f"{name}'s tokenizer has {len(tokenizer)} tokens but the model only "
                f"{model.config.vocab_size}: they do not belong together."
            )
    except ModelLoadError:
        raise
    except OSError as err:
        raise ModelLoadError(_explain(source, err)) from err
    except Exception as err:  # a corrupt or partial checkpoint fails in many ways
        if "ignore_mismatched_sizes" in str(err):  # transformers' word for weights of another shape
            raise ModelLoadError(
                f"{name}'s weights do not match its config.json: some are of another shape. "
                "Check that the config and the weights belong together."
            ) from err
        raise ModelLoadError(
            f"The checkpoint for {name} could not be read ({type(err).__name__}: {err})."
        ) from err
    finally:
        hf_logging.set_verbosity(verbosity)
    try:
        model.to(chosen).eval()  # type: ignore[arg-type]  # transformers types `to` as unbound
    except (RuntimeError, AssertionError, ValueError) as err:  # no such device, or torch built without it
        raise ModelLoadError(f"Cannot run the model on the device {chosen!r}: {err}") from err
    report(1.0, f"{name} is ready.")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        reason=reason if weights_dtype == "float32" else f"{reason} Weights in {weights_dtype}.",
        source=BUNDLED if plan.is_bundled else str(where),
        device=chosen,
        config=model.config.to_dict(),
    )


def _explain(source: object, err: OSError) -> str:
    text = str(err)
    if "not a valid model identifier" in text or "404" in text or "Repository Not Found" in text:
        return f"There is no model called {source!r} on the Hugging Face Hub."
    return f"Cannot load {source!r}: {text.splitlines()[0] if text else type(err).__name__}"


__all__ = ["DTYPES", "LoadedModel", "ModelPlan", "ModelWeights", "load_model", "plan_model"]
