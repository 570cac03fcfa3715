"""Which way imports go inside vgcourse (the course design's package rules), read from the source with ``ast``.

- Shared pieces (profiles, data, display, metrics, train, checkpoint, nn, ...) import no model family.
- Model families never import metrics.
- Metrics never import the training loop (``vgcourse.train``).
- A family imports shared pieces and earlier families only (dit -> diffusion, autoregressive -> tokenizers, ...);
  so the diffusion family never imports the DiT.
- Scripts (``vgcourse.scripts``: the torchrun entry point, probe retraining) live apart from the library code they
  drive: no library module imports them.

Every import counts: at the top of a module, inside a function, under ``TYPE_CHECKING``. Only a module's own
``if __name__ == "__main__":`` block is left out: it runs when the module is a command, never on import, so it is a
script entry (tooling, like ``vgcourse.scripts``). The rules hold file by file and along every chain of imports
(importing ``vgcourse.metrics`` must not load the training loop through a third module), and once more in fresh
interpreters. The violations that exist today are listed in ``KNOWN`` with the reason, so that the test fails on any
new one; a listed one that is fixed must leave the list (the third test), so that the list only shrinks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vgcourse

PACKAGE = Path(vgcourse.__file__).parent
# Model families in the order the course builds them: chapter 01 builds the VAE before the GAN (and the VAE-GAN
# hybrid of chapter 04 builds on it); the tokenizers (VQ-VAE, C-ViViT) whose codes the autoregressive and masked
# transformers model (chapters 05-07); diffusion (08-10); the DiT (11-12).
FAMILIES = ("autoencoders", "gan", "tokenizers", "autoregressive", "diffusion", "dit")
SHARED = ("profiles", "progress", "data", "display", "metrics", "train", "checkpoint", "nn", "video", "paths",
          "results")
# Course tooling above every layer, as the notebooks are: exercises check a learner's models, build runs chapters,
# scripts retrain the shipped probes and run DiT training under torchrun, record reads every chapter's results.
TOOLS = ("exercises", "build", "authoring", "bootstrap", "scripts", "record", "__main__", "__init__")

KNOWN = {
    # the VQ-VAE moved to tokenizers; its old name re-exports it until the code importing it from there is updated
    ("autoencoders/vq.py", "tokenizers"): "a family imports a later family",
}


def layer(path: Path) -> str:
    """The top-level piece of vgcourse a file belongs to: 'dit' for vgcourse/dit/model.py, 'video' for video.py."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def module_name(path: Path) -> str:
    """vgcourse/dit/model.py -> 'vgcourse.dit.model'; vgcourse/dit/__init__.py -> 'vgcourse.dit'."""
    parts = ("vgcourse", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_main_block(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":``: code that runs when the module is a command, never on import."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def imported_names(source: str, path: Path) -> set[str]:
    """Every dotted vgcourse name the source imports (``from vgcourse.a import b`` gives vgcourse.a.b), wherever the
    statement sits, except inside the module's own ``if __name__ == "__main__":`` block."""
    tree = ast.parse(source, filename=str(path))
    skipped = {id(n) for top in tree.body if is_main_block(top) for n in ast.walk(top)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            package = ("vgcourse", *path.relative_to(PACKAGE).parent.parts)
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""  # relative: resolved
            module = ".".join(filter(None, (base, node.module)))
            names = [f"{module}.{a.name}" for a in node.names]  # from vgcourse import results -> vgcourse.results
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith("vgcourse."))
    return found


def imported_layers(path: Path) -> set[str]:
    """Every top-level piece of vgcourse that the file imports (its ``__main__`` block aside)."""
    return {name.split(".")[1] for name in imported_names(path.read_text(), path)} - {layer(path)}


def rule_broken(importer: str, imported: str) -> str | None:
    """Which rule an import of ``imported`` from ``importer`` breaks, or None."""
    if importer in TOOLS:
        return None
    if imported == "scripts":
        return "the library imports a script"
    if importer in SHARED and imported in FAMILIES:
        return "shared imports a family"
    if importer in FAMILIES and imported == "metrics":
        return "a model imports metrics"
    if importer == "metrics" and imported == "train":
        return "metrics import the training loop"
    if importer in FAMILIES and imported in FAMILIES and FAMILIES.index(imported) > FAMILIES.index(importer):
        return "a family imports a later family"
    return None


def violations() -> dict[tuple[str, str], str]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = layer(path)
        for imported in imported_layers(path):
            broken = rule_broken(importer, imported)
            if broken:
                found[(path.relative_to(PACKAGE).as_posix(), imported)] = broken
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the vgcourse modules importing it loads directly: each imported module and the packages above it
    (``import vgcourse.dit.model`` runs vgcourse/dit/__init__.py first). The KNOWN imports are left out, so that a
    chain is blamed only for what is new."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        rel = path.relative_to(PACKAGE).as_posix()
        edges = set()
        for imported in imported_names(path.read_text(), path):
            if (rel, imported.split(".")[1]) in KNOWN:
                continue
            parts = imported.split(".")
            edges.update(m for m in (".".join(parts[:i]) for i in range(2, len(parts) + 1)) if m in files)
        parent = name.rsplit(".", 1)[0]
        if parent != "vgcourse" and parent in files and parent != name:
            edges.add(parent)  # a module's package runs before it
        graph[name] = edges - {name}
    return graph


def chain_violations() -> list[str]:
    """Rules broken along a chain of imports: module A loads B loads C, and A's piece may not import C's."""
    graph, found = import_graph(), []
    piece = lambda module: module.split(".")[1] if "." in module else "__init__"  # noqa: E731  (as layer() says)
    for start in sorted(graph):
        seen, todo = {start: [start]}, [start]
        while todo:
            here = todo.pop()
            for nxt in graph[here]:
                if nxt not in seen:
                    seen[nxt] = seen[here] + [nxt]
                    todo.append(nxt)
        for reached, path in seen.items():
            broken = rule_broken(piece(start), piece(reached)) if piece(reached) != piece(start) else None
            if broken and len(path) > 2:  # direct imports are test_no_new_import_rule_violations' to report
                found.append(f"{' -> '.join(path)}: {broken}")
    return found


def test_every_piece_is_classified() -> None:
    pieces = {layer(p) for p in PACKAGE.rglob("*.py")}
    unknown = pieces - set(FAMILIES) - set(SHARED) - set(TOOLS)
    assert not unknown, f"classify {sorted(unknown)} in tests/test_import_rules.py as a family, shared or tooling"


def test_no_new_import_rule_violations() -> None:
    new = {k: v for k, v in violations().items() if k not in KNOWN}
    assert not new, "imports that break the package rules (file, imported piece): " + "; ".join(
        f"vgcourse/{f} imports vgcourse.{m}: {why}" for (f, m), why in sorted(new.items()))


def test_known_exceptions_still_exist() -> None:
    found = violations()
    fixed = sorted(k for k in KNOWN if k not in found)
    assert not fixed, f"fixed, so remove from KNOWN in tests/test_import_rules.py: {fixed}"
    assert all(found[k] == why for k, why in KNOWN.items())


def test_no_chain_of_imports_breaks_the_rules() -> None:
    broken = chain_violations()
    assert not broken, "chains of imports that break the package rules: " + "; ".join(broken[:10])


def test_fresh_interpreters_load_what_the_rules_allow() -> None:
    """What ``import`` really loads: metrics without the training loop, diffusion without the DiT, the model
    families without metrics, and no library module the scripts."""
    checks = {
        "import vgcourse.metrics, vgcourse.diffusion": ("vgcourse.train", "vgcourse.dit", "vgcourse.scripts"),
        "import vgcourse.autoencoders, vgcourse.gan, vgcourse.tokenizers, vgcourse.autoregressive, vgcourse.dit, "
        "vgcourse.train, vgcourse.checkpoint, vgcourse.nn, vgcourse.data": ("vgcourse.metrics", "vgcourse.scripts"),
    }
    for statement, absent in checks.items():
        code = (f"import sys; {statement}; "
                f"print(sorted(m for m in sys.modules if m.split('.')[:2] in {[a.split('.') for a in absent]}))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             cwd=PACKAGE.parent)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "[]", f"`{statement}` loaded {out.stdout.strip()}"


def test_the_rules_catch_what_they_should() -> None:
    assert rule_broken("nn", "dit") == "shared imports a family"
    assert rule_broken("autoregressive", "metrics") == "a model imports metrics"
    assert rule_broken("diffusion", "metrics") == "a model imports metrics"
    assert rule_broken("metrics", "train") == "metrics import the training loop"
    assert rule_broken("autoencoders", "autoregressive") == "a family imports a later family"
    assert rule_broken("diffusion", "dit") == "a family imports a later family"
    assert rule_broken("train", "scripts") == "the library imports a script"
    assert rule_broken("dit", "scripts") == "the library imports a script"
    assert rule_broken("scripts", "dit") is None and rule_broken("scripts", "train") is None
    assert rule_broken("checkpoint", "dit") == "shared imports a family"
    assert rule_broken("dit", "diffusion") is None and rule_broken("autoregressive", "autoencoders") is None
    assert rule_broken("autoregressive", "tokenizers") is None and rule_broken("tokenizers", "autoencoders") is None
    assert rule_broken("tokenizers", "autoregressive") == "a family imports a later family"
    assert rule_broken("dit", "nn") is None and rule_broken("exercises", "dit") is None


def test_every_import_counts_but_a_main_block() -> None:
    source = '''
from vgcourse.data import MovingDigits
import vgcourse.nn.text
def f():
    from vgcourse.dit.model import DiT
if TYPE_CHECKING:
    from vgcourse.metrics import evaluate
if __name__ == "__main__":
    from vgcourse.scripts.train_dit import main
'''
    names = imported_names(source, PACKAGE / "train" / "distributed.py")
    assert names == {"vgcourse.data.MovingDigits", "vgcourse.nn.text", "vgcourse.dit.model.DiT",
                     "vgcourse.metrics.evaluate"}


def test_a_chain_is_followed_through_packages() -> None:
    graph = import_graph()
    assert "vgcourse.dit" in graph["vgcourse.dit.model"]  # the package runs before its module
    assert "vgcourse.diffusion.editing" in graph["vgcourse.diffusion"]
    assert "vgcourse.scripts.train_dit" not in graph["vgcourse.train.distributed"]  # only its __main__ block
