"""Which way imports go inside vgcourse (the course design's package rules), read from the source with ``ast``.

- Shared pieces (profiles, data, display, metrics, train, nn, ...) import no model family.
- Model families never import metrics.
- Metrics never import the training loop (``vgcourse.train``).
- A family imports shared pieces and earlier families only (dit -> diffusion, autoregressive -> tokenizers, ...).

Every import counts: at the top of a module, inside a function, under ``TYPE_CHECKING``. The violations that exist
today are listed in ``KNOWN`` with the reason, so that the test fails on any new one; a listed one that is fixed
must leave the list (the second test), so that the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vgcourse

PACKAGE = Path(vgcourse.__file__).parent
# Model families in the order the course builds them: chapter 01 builds the VAE before the GAN (and the VAE-GAN
# hybrid of chapter 04 builds on it); the tokenizers (VQ-VAE, C-ViViT) whose codes the autoregressive and masked
# transformers model (chapters 05-07); diffusion (08-10); the DiT (11-12).
FAMILIES = ("autoencoders", "gan", "tokenizers", "autoregressive", "diffusion", "dit")
SHARED = ("profiles", "data", "display", "metrics", "train", "nn", "video", "paths", "results")
# Course tooling above every layer, as the notebooks are: exercises check a learner's models, build runs chapters.
TOOLS = ("exercises", "build", "authoring", "bootstrap", "__main__", "__init__")

KNOWN = {
    # a torchrun entry point (DiT training) inside the training package: a script, to move out of the library
    ("train/distributed.py", "diffusion"): "shared imports a family",
    ("train/distributed.py", "dit"): "shared imports a family",
    # loading the shipped probe weights goes through train.checkpoint; retraining the probes runs the Trainer
    ("metrics/probes.py", "train"): "metrics import the training loop",
    ("metrics/train_probes.py", "train"): "metrics import the training loop",
    # the VQ-VAE moved to tokenizers; its old name re-exports it until the code importing it from there is updated
    ("autoencoders/vq.py", "tokenizers"): "a family imports a later family",
    # the structure condition (object masks) reuses the tracker's foreground detector
    ("diffusion/conditioning.py", "metrics"): "a model imports metrics",
    # ConditionalDenoiser can take a DiT backbone (chapter 11): diffusion reaches forward into dit
    ("diffusion/conditioning.py", "dit"): "a family imports a later family",
}


def layer(path: Path) -> str:
    """The top-level piece of vgcourse a file belongs to: 'dit' for vgcourse/dit/model.py, 'video' for video.py."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_layers(path: Path) -> set[str]:
    """Every top-level piece of vgcourse that the file imports, wherever the import statement sits."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            package = ("vgcourse", *path.relative_to(PACKAGE).parent.parts)
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""  # relative: resolved
            module = ".".join(filter(None, (base, node.module)))
            names = [f"{module}.{a.name}" for a in node.names]  # from vgcourse import results -> vgcourse.results
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "vgcourse" and len(parts) > 1:
                found.add(parts[1])
    return found - {layer(path)}


def rule_broken(importer: str, imported: str) -> str | None:
    """Which rule an import of ``imported`` from ``importer`` breaks, or None."""
    if importer in TOOLS:
        return None
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


def test_the_rules_catch_what_they_should() -> None:
    assert rule_broken("nn", "dit") == "shared imports a family"
    assert rule_broken("autoregressive", "metrics") == "a model imports metrics"
    assert rule_broken("metrics", "train") == "metrics import the training loop"
    assert rule_broken("autoencoders", "autoregressive") == "a family imports a later family"
    assert rule_broken("dit", "diffusion") is None and rule_broken("autoregressive", "autoencoders") is None
    assert rule_broken("autoregressive", "tokenizers") is None and rule_broken("tokenizers", "autoencoders") is None
    assert rule_broken("tokenizers", "autoregressive") == "a family imports a later family"
    assert rule_broken("dit", "nn") is None and rule_broken("exercises", "dit") is None
