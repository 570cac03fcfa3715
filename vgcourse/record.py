"""The course's record: every chapter's committed results file, read as one table.

Each chapter's gpu run writes ``notebooks/results/<chapter>.json`` (see :mod:`vgcourse.results`). The files differ in
shape, since each chapter measures its own things, so a reader names where each number lives: a path of keys
joined by ``/`` (keys may hold dots and spaces, never a slash), e.g. ``"metrics/headline/fd"``.

- :func:`lookup` reads one value by its path, and says which chapter and key is missing when it is not there.
- :class:`Entry` names a family's headline model and where its numbers live; :func:`read_entry` reads them, all
  at the course's one protocol (384 generated clips against the 512 held-out ones), with the device that ran it.
- :class:`Claim` names a claim of the survey, the chapter that checked it, and where its outcome and evidence
  live; :func:`read_claim` reads them.
- :func:`difference` is the standard error of a difference of two independent estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from vgcourse.metrics.protocol import PROTOCOL, verdict
from vgcourse.results import load

OUTCOMES = ("supported", "not supported", "not resolved")
SCORE_KEYS = ("frame_quality", "identity_consistency", "diversity", "motion_consistency")


def lookup(payload: dict[str, Any], path: str) -> Any:
    """The value at ``path`` ("key/key/..."), in a results payload. Raises KeyError naming the chapter and the
    first key that is missing, with the keys that are there."""
    node: Any = payload
    walked: list[str] = []
    for key in path.split("/"):
        if not isinstance(node, dict) or key not in node:
            here = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise KeyError(f"{payload.get('chapter', 'a results file')}: no {key!r} under "
                           f"{'/'.join(walked) or 'the top level'} (there: {here})")
        node = node[key]
        walked.append(key)
    return node


def _number(payload: dict[str, Any], path: str | Sequence[str] | None) -> float | None:
    """The float at a path, the sum of those at several paths (a pipeline's parts), or None for no path."""
    if path is None:
        return None
    paths = [path] if isinstance(path, str) else list(path)
    values = [lookup(payload, p) for p in paths]
    for p, v in zip(paths, values):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{payload.get('chapter')}: {p} holds {v!r}, not a finite number")
    return float(sum(values))


@dataclass(frozen=True)
class Entry:
    """One family's headline model in the record, and where its numbers live in its chapter's results file.

    ``scores`` is the path of the dict that holds fd, fd_se and the course's other metrics for this model (at
    384 against 512); ``flops`` the path (or paths, summed: a tokenizer and its prior) of its training FLOPs;
    ``minutes`` of its training minutes; ``sampling_ms`` of its sampling time per clip, where one was measured.
    """

    family: str
    era: str
    model: str
    chapter: str
    scores: str = "metrics/headline"
    flops: str | tuple[str, ...] | None = None
    minutes: str | tuple[str, ...] | None = None
    sampling_ms: str | None = None


def read_entry(entry: Entry, directory: str | Path | None = None) -> dict[str, Any]:
    """The entry's numbers: fd, fd_se, the SCORE_KEYS, n_gen, training FLOPs and minutes, sampling ms per clip,
    and the device and profile of the run. Raises ValueError when the run is not a gpu run or its scores are not at
    the protocol's n (384 generated clips): the record compares like with like or not at all."""
    payload = load(entry.chapter, directory)
    scores = lookup(payload, entry.scores)
    if payload.get("profile") != "gpu":
        raise ValueError(f"{entry.chapter}: a {payload.get('profile')!r} run; the record reads gpu runs only")
    row: dict[str, Any] = {"family": entry.family, "era": entry.era, "model": entry.model,
                           "chapter": entry.chapter, "device": payload["device"], "profile": payload["profile"]}
    for key in ("fd", "fd_se", *SCORE_KEYS, "n_gen"):
        row[key] = lookup(payload, f"{entry.scores}/{key}") if key in ("fd", "fd_se") else scores.get(key)
    if row["n_gen"] != PROTOCOL.n_gen:
        raise ValueError(f"{entry.chapter}: {entry.model} was scored on n_gen = {row['n_gen']} clips, not the "
                         f"protocol's {PROTOCOL.n_gen}")
    row["train_flops"] = _number(payload, entry.flops)
    row["minutes"] = _number(payload, entry.minutes)
    row["sampling_ms"] = _number(payload, entry.sampling_ms)
    return row


@dataclass(frozen=True)
class Claim:
    """A claim of the survey as a chapter checked it, and where its outcome lives.

    Either ``outcome`` is the path of the chapter's recorded outcome (one of OUTCOMES, or a bar's 'met' / 'not met'
    / 'not resolved', read as supported / not supported / not resolved), or several paths for a claim of several
    parts (supported when every part is, not supported when any part is not, else not resolved: the course's rule
    for a claim of parts), or ``measured`` = (value path, SE path,
    line, higher_is_better) names the number the chapter's stated rule reads, and the outcome is read from it with
    the course's one rule (:func:`vgcourse.metrics.protocol.verdict`). ``evidence`` maps a label to the path of a
    number the claim rests on."""

    era: str
    claim: str
    chapter: str
    outcome: str | tuple[str, ...] | None = None
    evidence: dict[str, str] = field(default_factory=dict)
    measured: tuple[str, str, float, bool] | None = None

    def __post_init__(self) -> None:
        if (self.outcome is None) == (self.measured is None):
            raise ValueError(f"{self.claim!r}: give exactly one of outcome (a recorded outcome's path) and "
                             "measured (value path, SE path, line, higher_is_better)")


BAR_TO_CLAIM = {"met": "supported", "not met": "not supported", "not resolved": "not resolved"}


def combined(outcomes: Sequence[str]) -> str:
    """The outcome of a claim of several parts, the course's rule: supported when every part is, not supported when
    any part is not, else not resolved. Each part is one of OUTCOMES."""
    unknown = [o for o in outcomes if o not in OUTCOMES]
    if not outcomes or unknown:
        raise ValueError(f"expected one or more of {OUTCOMES}, got {list(outcomes)}")
    if all(o == "supported" for o in outcomes):
        return "supported"
    return "not supported" if "not supported" in outcomes else "not resolved"


def _outcome_word(payload: dict[str, Any], path: str) -> tuple[str, str | None]:
    """(one of OUTCOMES, the reason written after it or None) from the outcome or bar word at ``path``."""
    text = lookup(payload, path)
    words = {**{o: o for o in OUTCOMES}, **BAR_TO_CLAIM}
    head = (next((w for w in sorted(words, key=len, reverse=True) if text.startswith(w)), None)
            if isinstance(text, str) else None)
    if head is None:
        raise ValueError(f"{payload.get('chapter')}: {path} holds {text!r}; expected one of {sorted(words)}")
    return words[head], text[len(head):].strip(" ()") or None


def read_claim(claim: Claim, directory: str | Path | None = None) -> dict[str, Any]:
    """The claim's outcome (one of OUTCOMES), the reason recorded with it ("not resolved (a model above the
    floor)" keeps "a model above the floor"), and its evidence."""
    payload = load(claim.chapter, directory)
    if claim.measured is not None:
        value_path, se_path, line, higher_is_better = claim.measured
        value, se = _number(payload, value_path), _number(payload, se_path)
        outcome, reason = BAR_TO_CLAIM[verdict(value, line, se, lower_is_better=not higher_is_better)], None
    else:
        paths = [claim.outcome] if isinstance(claim.outcome, str) else list(claim.outcome)
        parts = [_outcome_word(payload, p) for p in paths]
        outcome = combined([w for w, _ in parts])
        reason = "; ".join(r for _, r in parts if r) or None
    return {"era": claim.era, "claim": claim.claim, "chapter": claim.chapter, "outcome": outcome, "reason": reason,
            "evidence": {label: lookup(payload, path) for label, path in claim.evidence.items()}}


def difference(a: float, se_a: float, b: float, se_b: float) -> tuple[float, float]:
    """a − b and its standard error sqrt(se_a² + se_b²), treating the two estimates as independent (two models'
    fd, each with its jackknife SE over its own generated clips). Both SEs hold the held-out clips fixed: this one
    says how much the difference would move with other generated clips, not with another held-out set."""
    for name, se in (("se_a", se_a), ("se_b", se_b)):
        if not se >= 0:
            raise ValueError(f"{name} must be a standard error >= 0, got {se}")
    return a - b, math.hypot(se_a, se_b)
