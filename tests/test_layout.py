"""The package's shape: gradio only in explorer/ui, imports that flow one way with no cycles, and
the static files and texts the UI reads shipped inside the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "explorer"
# Lower layers never import higher ones: model → analysis → figures/views/texts → ui.
LAYERS = {"model": 0, "analysis": 1, "figures": 2, "ui": 3}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: frozenset[str] = frozenset()) -> set[str]:
    """The modules `path` imports at run time (not those under `if TYPE_CHECKING:`); `from a import b`
    counts as importing a.b alone where a.b is one of `modules` (a's __init__ being lazy)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = {f"{node.module}.{alias.name}" for alias in node.names}
                found.update(names & modules or {node.module})
            for child in ("body", "orelse", "finalbody", "handlers"):
                if isinstance(getattr(node, child, None), list):
                    visit(getattr(node, child))

    visit(tree.body)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    names = frozenset(modules)
    return {name: {m for m in imports_of(path, names) if m in modules} for name, path in modules.items()}


def test_only_the_ui_package_imports_gradio() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "ui" in path.relative_to(PACKAGE).parts:
            continue
        roots = {name.split(".")[0] for name in imports_of(path)}
        assert "gradio" not in roots, path


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    done: set[str] = set()

    def walk(name: str, stack: list[str]) -> None:
        if name in stack:
            raise AssertionError("import cycle: " + " → ".join([*stack[stack.index(name) :], name]))
        if name in done:
            return
        for dep in sorted(graph[name]):
            if dep != "explorer":  # the package's lazy __init__ imports nothing at run time
                walk(dep, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        walk(name, [])


def test_imports_flow_from_the_model_to_the_ui(graph: dict[str, set[str]]) -> None:
    def layer(name: str) -> int | None:
        parts = name.split(".")
        return LAYERS.get(parts[1]) if len(parts) > 1 else None

    for name, deps in graph.items():
        for dep in deps:
            if layer(name) is not None and layer(dep) is not None:
                assert layer(dep) <= layer(name), f"{name} imports {dep}"


def test_modules_stay_short() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 440
    }
    assert not long, long


def test_the_ui_reads_its_css_and_javascript_from_files() -> None:
    from explorer.ui.common import STATIC

    for name in ("app.css", "lecture.css", "page.js", "plot_click.js", "url_sync.js"):
        assert (STATIC / name).is_file(), name
    for path in (PACKAGE / "ui").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "addEventListener" not in text and "{ color:" not in text, path  # no JS or CSS in Python


def test_import_explorer_stays_cheap() -> None:
    code = (
        "import sys, explorer, explorer.figures, explorer.walkthrough, explorer.link; "
        "print(sorted({'torch', 'transformers', 'gradio'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_api_is_where_the_readme_says() -> None:
    import explorer

    for name in (
        "load_model",
        "analyze",
        "breakdown",
        "GenerationSession",
        "head_scores",
        "ablate",
        "head_importance",
        "logit_lens",
        "compare",
        "build_app",
        "export_report",
        "logit_attribution",
    ):
        assert callable(getattr(explorer, name)), name


def test_the_tab_bar_holds_tabs_only(tiny) -> None:
    """A component made inside gr.Tabs but outside every gr.Tab (a gr.State, say) shifts Gradio's
    tab buttons: once the Walk-through had opened, Export's button read "Walk-through"."""
    import gradio as gr

    from explorer.ui import build_app

    demo = build_app(loaded=tiny)
    (tabs,) = [block for block in demo.blocks.values() if isinstance(block, gr.Tabs)]
    assert tabs.children and all(isinstance(child, gr.Tab) for child in tabs.children), [
        type(child).__name__ for child in tabs.children
    ]
