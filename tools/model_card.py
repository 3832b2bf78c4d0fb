"""Write the demo model's card (README.md) from the eval.json that training leaves beside it.

python tools/model_card.py assets/models/demo-gpt2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors import safe_open


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _grid(scores: list[list[float]]) -> str:
    heads = len(scores[0])
    lines = ["| layer | " + " | ".join(f"H{h}" for h in range(heads)) + " |", "|---" * (heads + 1) + "|"]
    for layer, row in enumerate(scores):
        lines.append(f"| L{layer} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
    return "\n".join(lines)


def _share(mix: str, i: int) -> str:
    shares = [float(x) for x in mix.split(",")]
    return f"{shares[i] / sum(shares):.0%}"


def _threads(args: dict) -> str:
    n = int(args.get("threads") or 2)
    return f"{n} CPU thread{'s' if n != 1 else ''}"


def _head(h: dict) -> str:
    return f"L{h['layer']}H{h['head']} {h['score']:.2f}"


def _aux_section(report: dict) -> str:
    """How the heads formed, when extra losses on their attention helped them (`--induction-aux`)."""
    args = report["args"]
    weight, until = float(args.get("induction_aux") or 0), int(args.get("aux_until") or 0)
    if weight <= 0 or until <= 0:
        return ""
    heads = args.get("aux_heads") or [args["aux_head"]]
    names = " and ".join(f"L{layer}H{head}" for layer, head in heads)
    prev_weight = float(args.get("prev_aux") or 0)
    prev = ""
    if prev_weight > 0:
        layer, head = args["prev_head"]
        prev = (
            f"\n- *previous token*: on every sequence, prose included, the mean −log of head L{layer}H{head}'s "
            f"attention to the previous position (weight {prev_weight:g}, `--prev-aux`, `--prev-head`)."
        )
    history = report.get("history", [])
    marks = {until, report["steps"]} | {h["step"] for h in history if h["step"] % 250 == 0}
    rows = "\n".join(
        f"| {h['step']:,} | {'on' if h['step'] <= until else 'off'} | {h['heldout_loss']:.3f} | "
        f"{_head(h['previous_token_head'])} | {_head(h['induction_head'])} | {h['repeat_loss_ratio']:.2f} |"
        for h in history
        if h["step"] in marks
    )
    table = (
        "\nMeasured during training (16 held-out sequences; the final evaluation below uses 64):\n\n"
        "| step | extra losses | held-out loss | best previous-token head | best induction head "
        "| copy loss ratio |\n|---|---|---|---|---|---|\n" + rows + "\n"
        if rows
        else ""
    )
    recipe = "\n".join(f"{i}. `{command}`" for i, command in enumerate(report.get("recipe", []), 1))
    recipe = (
        f"\nThe commands, in order (the second resumes the first's checkpoint):\n\n{recipe}\n"
        if recipe
        else ""
    )
    return f"""
### How the heads formed
Next-token training alone did not form an induction head on this budget. The previous version of
this model (2,900 steps with 30–50 % copies) and side runs (80 % copies on 64-token sequences;
2 layers × 4 heads with 50–100 % copies; 2 layers on synthetic copies alone, 512 token kinds, for
3,000 steps) all stayed on the plateau where no head looks at the token after an earlier
occurrence (best score 0.02 on the evaluation below). So, before step {until:,}, training adds
extra losses on attention:
- *induction*: on the copy sequences, the mean −log of head {names}'s attention from each token of
  the second copy to the token just after its first occurrence (weight {weight:g},
  `--induction-aux`, `--aux-head`, `--aux-until`).{prev}

These losses decide *where the heads look*. They do not make the model *use* what the heads read:
the drop in the loss on the second copy (see the evaluation) is the ordinary next-token loss
learning to copy through them. From step {until:,} on they are off, and the model trains on the
next-token loss alone.
{recipe}{table}"""


def card(folder: Path) -> str:
    report = json.loads((folder / "eval.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    m, args = report["metrics"], report["args"]
    prev, ind = m["previous_token_head"], m["induction_head"]
    with safe_open(str(folder / "model.safetensors"), "np") as f:
        n_params = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (safe_open is not iterable)
    size_mb = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6
    hours = report.get("train_seconds_total", report["train_seconds_this_run"]) / 3600
    sources = "\n".join(f"| {s['name']} | {s['origin']} | {s['licence']} |" for s in report["sources"])
    samples = "\n".join(f"- **{p}** → {t!r}" for p, t in report["samples"].items())
    ok = lambda cond: "✓" if cond else "✗"  # noqa: E731
    return f"""---
license: mit
library_name: transformers
pipeline_tag: text-generation
tags: [gpt2, interpretability, attention, demo]
---

# demo-gpt2: the small GPT-2 that Attention Explorer ships

A GPT-2-architecture model ({config["n_layer"]} layers × {config["n_head"]} heads, d_model
{config["n_embd"]}, context {config["n_positions"]} tokens, {n_params / 1e6:.1f} M parameters)
trained from scratch on CPU so that the explorer runs with nothing downloaded. It is a standard
Hugging Face checkpoint: `GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager")` and
`AutoTokenizer.from_pretrained(path)` load it. The folder is {size_mb:.1f} MB.

**It is a small demo model.** It writes locally plausible English and has the attention heads
that the app exists to teach, but it knows little. Load `gpt2` (`attention-explorer --model gpt2`)
for the real one wherever the Hugging Face Hub or your local cache has it.

## Tokenizer
A byte-level BPE like GPT-2's, trained on the same corpus with `tokenizers`:
{config["vocab_size"]:,} tokens, `<|endoftext|>` = id 0. GPT-2's own 50,257-token vocabulary would
have made the embedding table alone larger than the whole model and most of the training cost on
two CPU cores; a corpus-specific vocabulary gives shorter sequences for the same text.

## Training data
| source | where it comes from | licence |
|---|---|---|
{sources}

The last 2 % of every source is held out. Training text: {report["train_tokens"]:,} tokens;
held-out prose: {report["heldout_tokens"]:,} tokens. Besides prose, training uses two kinds of
sequence the script generates, because plain text alone formed no attention structure in 20 M
tokens on this budget:
- *copies*: prose with a span of 10–64 random tokens written twice at a random place; only
  copying from the first occurrence predicts the second, at a distance that changes every time, so
  only an induction head solves it;
- *previous-token data*: random tokens where each token, half the time, is the one two places
  back; only attending to the previous position predicts those.

## Training
`python tools/train_demo_model.py` (fixed seed {args["seed"]}; resumable with `--resume`; CPU or CUDA).
{report["steps"]:,} steps of {args["batch_tokens"]:,} tokens ({report["tokens_trained"]:,} tokens in all), in phases
(`--phases {args["phases"]}`, each `until:prose,induction,previous shares:sequence length`):
previous-token data alone on 64-token sequences first (a softmax over few keys learns fastest),
then mostly copies on 128 tokens, then prose {_share(args["mix"], 0)}, copies {_share(args["mix"], 1)}
and previous-token data {_share(args["mix"], 2)} on {args["seq_len"]} tokens, with every
{args["long_every"]}th step at the full {config["n_positions"]} so every position embedding is
trained. Position embeddings start from sinusoids (`--pos-init {args["pos_init"]}`); AdamW, lr
{args["lr"]}, cosine schedule, bf16 autocast; {hours:.1f} hours on {_threads(args)} of a 2-core machine.
{_aux_section(report)}
{report.get("note", "")}

## Evaluation (printed by the training script, stored in `eval.json`)
| measure | value | goal |
|---|---|---|
| held-out loss | {m["heldout_loss"]:.3f} nats/token | |
| held-out perplexity | {m["heldout_perplexity"]:.1f} | |
| best previous-token head (mean attention i → i−1 on held-out prose) | L{prev["layer"]}H{prev["head"]}: {prev["score"]:.2f} | ≥ 0.6 {ok(prev["score"] >= 0.6)} |
| best induction head (50 random tokens repeated; attention to the token after the earlier occurrence) | L{ind["layer"]}H{ind["head"]}: {ind["score"]:.2f} | ≥ 0.4 {ok(ind["score"] >= 0.4)} |
| loss on the repeated copy ÷ loss on the first copy | {m["repeat_loss_ratio"]:.3f} ({m["repeat_loss_second_copy"]:.2f} / {m["repeat_loss_first_copy"]:.2f}) | ≤ 0.5 {ok(m["repeat_loss_ratio"] <= 0.5)} |

Previous-token score of every head:

{_grid(m["previous_token_scores"])}

Induction score of every head:

{_grid(m["induction_scores"])}

## Samples (temperature 0.8, top-k 40)
{samples}

## Limits
Trained on old and technical English (the Bible, Shakespeare, the Jargon File, Bierce, the Python
documentation) plus templated sentences; it has no knowledge of the world to speak of, repeats
itself, and should not be used for anything but looking inside a transformer.
"""


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "assets/models/demo-gpt2")
    (folder / "README.md").write_text(card(folder))
    print(f"wrote {folder / 'README.md'}")
