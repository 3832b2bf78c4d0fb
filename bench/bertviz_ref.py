"""The reference: bertviz 1.4.1's model_view on the same model and input.

model_view writes every attention weight of every head into the page as a JSON literal, so its
HTML grows with layers × heads × tokens². Its page loads require.js, d3 and jQuery from a CDN;
`vendor_js` fetches those same libraries from the npm registry once (into bench/results/, which
is gitignored) so that Chromium can draw the page here, with no network, by answering the CDN
URLs from these local copies.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR

# The CDN URLs model_view's page asks for, and the npm package and file that serve each.
# jQuery 2.0.0 is not on npm; 2.2.4 is the last of the same major version.
CDN_LIBS = {
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js": (
        "requirejs@2.3.6",
        "require.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/d3/5.7.0/d3.min.js": ("d3@5.7.0", "dist/d3.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/jquery/2.0.0/jquery.min.js": (
        "jquery@2.2.4",
        "dist/jquery.min.js",
    ),
}
JS_DIR = RESULTS_DIR / "cache" / "bertviz-js"


def model_view_html(loaded: Any, text: str) -> str:
    """bertviz's model_view page (html_action="return") for `text`, from the same model."""
    import torch
    from bertviz import model_view

    ids = loaded.tokenizer(text)["input_ids"]
    with torch.inference_mode():
        out = loaded.model(torch.tensor([ids]), output_attentions=True)
    tokens = loaded.tokenizer.convert_ids_to_tokens(ids)
    return model_view(list(out.attentions), tokens, html_action="return").data


def vendor_js() -> dict[str, Path] | None:
    """CDN URL -> local file, fetched with `npm pack` on first use; None where npm cannot."""
    JS_DIR.mkdir(parents=True, exist_ok=True)
    files = {}
    for url, (package, inner) in CDN_LIBS.items():
        folder = JS_DIR / package.replace("@", "-")
        target = folder / inner
        if not target.is_file():
            try:
                done = subprocess.run(
                    ["npm", "pack", package, "--silent"],
                    cwd=JS_DIR,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            except (OSError, subprocess.TimeoutExpired):
                return None
            tgz = (
                JS_DIR / done.stdout.strip().splitlines()[-1]
                if done.returncode == 0 and done.stdout
                else None
            )
            if tgz is None or not tgz.is_file():
                return None
            with tarfile.open(tgz) as tar:
                member = tar.getmember(f"package/{inner}")
                member.name = inner
                tar.extract(member, folder, filter="data")
            tgz.unlink()
        files[url] = target
    return files
