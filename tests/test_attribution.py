"""Direct logit attribution (#19): the parts add up to the model's logit, agree with the model's
own modules read through hooks, and name the induction heads where they copy a token."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer import ExplorerError, analyze, attribute, head_source_attribution, logit_attribution
from explorer.analysis.heads import probe_for
from explorer.figures import attribution_bars_figure, attribution_flow_figure, attribution_heads_figure

PROMPT = "When Mary and John went to the store, John gave a drink to"
TOLERANCE = 1e-4  # fp32 end to end, the parts summed in float64


@pytest.fixture(scope="module")
def tiny_analysis(tiny):
    return analyze(tiny, PROMPT)


@pytest.fixture(scope="module")
def bundled_analysis(bundled):
    return analyze(bundled, PROMPT)


@pytest.mark.parametrize("which", ["tiny_analysis", "bundled_analysis"])
@pytest.mark.parametrize("position", [-1, 0, 5])
def test_parts_add_up_to_the_models_logit(request, which, position):
    a = request.getfixturevalue(which)
    r = attribute(a, position)
    logits = a.logits_at(position)
    assert r.token_id == int(np.argmax(logits)) and r.position == position % a.n_pos
    assert r.logit == pytest.approx(float(logits[r.token_id]))
    assert abs(r.parts["contribution"].sum() + r.bias - r.logit) <= TOLERANCE
    assert r.deviation <= TOLERANCE
    n_layer, n_head = a.n_layer, a.n_head
    assert len(r.parts) == 1 + n_layer * (n_head + 2)
    assert list(r.parts.columns) == ["component", "kind", "layer", "head", "contribution"]
    assert r.parts["component"].is_unique
    heads = r.parts[r.parts["kind"] == "head"]
    assert (heads["component"] == [f"L{la}H{h}" for la in range(n_layer) for h in range(n_head)]).all()
    assert (r.parts.loc[r.parts["kind"] != "head", "head"] == -1).all()
    assert {"embed", f"L{n_layer - 1} attn bias", f"L{n_layer - 1} MLP"} <= set(r.parts["component"])
    assert r.heads.shape == (n_layer, n_head) and r.heads.dtype == np.float32


def _from_the_models_modules(loaded, text, position, token_id):
    """Every part's share again, from the model's own modules: pre-hooks on attn.c_proj (the
    heads' contexts side by side) and ln_f (the final stream), forward hooks on each MLP."""
    import torch

    model = loaded.model
    seen: dict[str, torch.Tensor] = {}
    hooks = [model.transformer.ln_f.register_forward_pre_hook(lambda m, args: seen.update(final=args[0][0]))]
    for layer, block in enumerate(model.transformer.h):
        hooks += [
            block.attn.c_proj.register_forward_pre_hook(
                lambda m, args, layer=layer: seen.update({f"ctx{layer}": args[0][0]})
            ),
            block.mlp.register_forward_hook(
                lambda m, args, out, layer=layer: seen.update({f"mlp{layer}": out[0]})
            ),
        ]
    ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
    try:
        with torch.inference_mode():
            model(ids, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.inference_mode():
        return _shares(model, ids, seen, position, token_id)


def _shares(model, ids, seen, position, token_id):
    """(part − mean) / σ_final · γ · W_U[token] for every part, in float64 torch."""
    cfg, ln_f = model.config, model.transformer.ln_f
    d_head = cfg.n_embd // cfg.n_head
    row = model.lm_head.weight[token_id].double()
    final = seen["final"][position].double()
    sigma = (final.var(unbiased=False) + ln_f.eps).sqrt()

    def share(part):
        return float((part - part.mean()) / sigma * ln_f.weight.double() @ row)

    embed = model.transformer.wte.weight[ids[0, position]] + model.transformer.wpe.weight[position]
    out = {"embed": share(embed.double())}
    for layer, block in enumerate(model.transformer.h):
        w_o = block.attn.c_proj.weight.double()  # Conv1D: [in, out]
        ctx = seen[f"ctx{layer}"][position].double()
        for h in range(cfg.n_head):
            rows = slice(h * d_head, (h + 1) * d_head)
            out[f"L{layer}H{h}"] = share(ctx[rows] @ w_o[rows])
        out[f"L{layer} attn bias"] = share(block.attn.c_proj.bias.double())
        out[f"L{layer} MLP"] = share(seen[f"mlp{layer}"][position].double())
    return out, float(ln_f.bias.double() @ row)


@pytest.mark.parametrize("model", ["tiny", "bundled"])
def test_parts_agree_with_the_models_own_modules(request, model):
    loaded = request.getfixturevalue(model)
    a = analyze(loaded, PROMPT)
    position = a.n_pos - 3
    r = attribute(a, position)
    expected, bias = _from_the_models_modules(loaded, PROMPT, position, r.token_id)
    ours = dict(zip(r.parts["component"], r.parts["contribution"], strict=True))
    assert set(ours) == set(expected)
    assert max(abs(ours[name] - expected[name]) for name in ours) <= TOLERANCE
    assert r.bias == pytest.approx(bias, abs=1e-6)


@pytest.mark.parametrize("which", ["tiny_analysis", "bundled_analysis"])
def test_per_key_shares_add_up_to_each_head(request, which):
    a = request.getfixturevalue(which)
    position = a.n_pos - 2
    r = attribute(a, position)
    assert r.sources.shape == (a.n_layer, a.n_head, a.n_pos) and r.sources.dtype == np.float32
    assert (r.sources[:, :, position + 1 :] == 0).all()  # no key after the query
    np.testing.assert_allclose(r.sources.sum(-1), r.heads, atol=TOLERANCE)
    for layer, head in [(0, 0), (a.n_layer - 1, a.n_head - 1)]:
        df = head_source_attribution(a, layer, head, position)
        assert list(df.columns) == ["key", "token", "pattern", "contribution"]
        assert df["key"].tolist() == list(range(position + 1))
        assert df["token"].tolist() == list(a.tokens[: position + 1])
        np.testing.assert_allclose(df["pattern"], a.pattern[layer, head, position][: position + 1])
        assert df["contribution"].sum() == pytest.approx(float(r.heads[layer, head]), abs=TOLERANCE)
        np.testing.assert_allclose(df["contribution"], r.sources[layer, head, : position + 1], atol=1e-6)


def test_induction_heads_carry_the_copied_token(bundled):
    """Random words repeated: in the second copy the next token is a copy, and the bundled
    model's induction heads (L1H0, L1H1) are what write it, through the token after the earlier
    occurrence."""
    a = analyze(bundled, probe_for("induction", bundled))
    ids = a.token_ids.tolist()
    period = next(p for p in range(2, a.n_pos) if ids[p:] == ids[: a.n_pos - p])
    total = np.zeros((a.n_layer, a.n_head))
    for q in range(period + 1, a.n_pos - 1):
        r = attribute(a, q, ids[q + 1])
        heads = r.parts[r.parts["kind"] == "head"].nlargest(3, "contribution")
        assert {"L1H0", "L1H1"} & set(heads["component"]), (q, heads["component"].tolist())
        assert np.abs(r.sources[1, 0]).argmax() == q + 1 - period  # read from the earlier copy
        total += r.heads
    layer, head = np.unravel_index(total.argmax(), total.shape)
    assert (layer, head) in {(1, 0), (1, 1)}


def test_versus_is_the_difference_of_two_attributions(bundled_analysis, tiny_analysis):
    for a, token, versus in [(bundled_analysis, " Mary", " John"), (tiny_analysis, 7, 11)]:
        diff = attribute(a, token=token, versus=versus)
        one, other = attribute(a, token=token), attribute(a, token=versus)
        np.testing.assert_allclose(
            diff.parts["contribution"], one.parts["contribution"] - other.parts["contribution"], atol=1e-6
        )
        np.testing.assert_allclose(diff.sources, one.sources - other.sources, atol=1e-6)
        assert diff.logit == pytest.approx(one.logit - other.logit, abs=1e-5)
        assert diff.bias == pytest.approx(one.bias - other.bias, abs=1e-6)
        assert diff.deviation <= TOLERANCE
        assert (diff.token_id, diff.versus_id) == (one.token_id, other.token_id)
    named = attribute(bundled_analysis, token=" Mary", versus=" John")
    assert (named.token, named.versus) == ("␣Mary", "␣John")
    # The display form of a space is accepted back.
    assert attribute(bundled_analysis, token="␣Mary").token_id == named.token_id


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": "Mary and John"},  # several tokens
        {"token": ""},
        {"token": 10**9},
        {"token": -1},
        {"token": True},
        {"token": 1.5},
        {"token": " Mary", "versus": " Mary"},
        {"versus": "John went"},
        {"position": 99},
        {"position": "last"},
    ],
)
def test_bad_input_is_a_readable_error(bundled_analysis, kwargs):
    with pytest.raises(ExplorerError):
        attribute(bundled_analysis, **kwargs)


def test_bad_head_is_a_readable_error(tiny_analysis):
    with pytest.raises(ExplorerError, match="no head"):
        head_source_attribution(tiny_analysis, tiny_analysis.n_layer, 0)
    with pytest.raises(ExplorerError, match="not one"):
        head_source_attribution(tiny_analysis, 0, 0, token="Mary and John")


def test_figures(tiny_analysis):
    a = tiny_analysis
    r = attribute(a)
    grid = attribution_heads_figure(r.parts, "<script>x</script>", versus="<b>")
    heat = grid.data[0]
    assert heat.zmid == 0 and np.asarray(heat.z).shape == (a.n_layer, a.n_head)
    np.testing.assert_array_equal(np.asarray(heat.z), r.heads)
    assert np.asarray(heat.customdata).shape == (a.n_layer, a.n_head, 2)
    assert np.asarray(heat.customdata)[1, 2].tolist() == [1, 2]  # a click names the layer and head

    bars = attribution_bars_figure(r.parts, "<script>x</script>", top_n=5).data[0]
    assert len(bars.x) == 5
    shown = np.abs(np.asarray(bars.x))
    assert (np.diff(shown) >= 0).all()  # the largest on top (Plotly draws the first bar lowest)
    assert shown[-1] == pytest.approx(np.abs(r.parts["contribution"]).max(), rel=1e-6)
    assert set(bars.customdata) <= set(r.parts["component"])
    colours = dict(zip(bars.customdata, bars.marker.color, strict=True))
    signs = dict(zip(r.parts["component"], np.sign(r.parts["contribution"]), strict=True))
    assert len({(signs[name], colours[name]) for name in colours}) == len(set(colours.values()))

    tokens = list(a.tokens)
    tokens[2] = "<script>alert(1)</script>"
    flow = attribution_flow_figure(r.sources, tokens, r.position, parts=r.parts, threshold=0.0, token="<i>")
    middles = next(t for t in flow.data if t.customdata is not None)
    n_edges = int(np.count_nonzero(r.sources))
    assert len(middles.x) == n_edges and np.asarray(middles.customdata).shape == (n_edges, 3)
    strong = attribution_flow_figure(r.sources, tokens, r.position, threshold=0.5)
    few = next(t for t in strong.data if t.customdata is not None)
    largest = np.abs(r.sources).max()
    assert len(few.x) == int((np.abs(r.sources) >= 0.5 * largest).sum()) < n_edges
    for fig in (grid, flow, strong, attribution_bars_figure(r.parts, "<script>x</script>")):
        payload = fig.to_json()
        assert "<script>" not in payload and "<b>" not in payload and "<i>" not in payload
    assert "&lt;script&gt;" in flow.to_json() and "&lt;script&gt;" in grid.to_json()
    assert all(t.x.dtype == np.float32 for t in flow.data if t.type == "scatter")


def test_the_issue_19_entry_points_are_exported():
    import explorer
    import explorer.analysis.attribution as module
    from explorer import figures

    for name in ("logit_attribution", "head_source_attribution", "Attribution"):
        assert name in explorer.__all__ and getattr(explorer, name) is getattr(module, name)
    for name in ("attribution_heads_figure", "attribution_bars_figure", "attribution_flow_figure"):
        assert name in figures.__all__


def test_logit_attribution_is_a_table_whose_parts_add_up_to_the_models_logit(tiny) -> None:
    a = analyze(tiny, "When Mary and John went to the store, John gave a drink to")
    df = logit_attribution(a)
    assert isinstance(df, pd.DataFrame)
    assert {"component", "kind", "layer", "head", "contribution"} <= set(df.columns)
    assert abs(df["contribution"].sum() + df.attrs["bias"] - df.attrs["logit"]) <= 1e-4
    assert df.attrs["logit"] == pytest.approx(float(a.logits_at(-1)[df.attrs["token_id"]]), abs=1e-5)
    same = attribute(a)
    assert np.allclose(df["contribution"], same.parts["contribution"]) and df.attrs["token"] == same.token
