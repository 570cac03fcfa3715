"""The prose a learner reads teaches the subject, not how the course was made (COURSE.md's quality rules).

No chapter's markdown or code comments hold a commit hash, a word about the course's issues, sessions or side
experiments, or a path outside the repository (a learner's clone has neither ``shared/`` nor ``../``). Read from
the sources in notebooks/src, which a test in test_authoring.py keeps equal to the notebooks.
"""

import re
from pathlib import Path

import pytest

from vgcourse.authoring import parse_source

SOURCES = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "src").glob("*.py"))

FORBIDDEN = {
    "a commit hash": r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b",
    "the course's issues": r"\bissues?\b",
    "a path outside the repository": r"\bshared/|NOTES\.md|\.\./",
    "the sessions that made the course": r"\bsessions?\b",
    "a run history": r"\b(earlier|previous|last) (run|version|session|attempt)s?\b|\bwe (re-?ran|tried)\b"
                     r"|\bside experiments?\b",
}


def prose(source: Path) -> list[str]:
    """The markdown cells and the comment lines of the code cells, in order."""
    out = []
    for kind, text in parse_source(source.read_text()):
        out.append(text if kind == "markdown" else "\n".join(
            line for line in text.splitlines() if line.lstrip().startswith("#")))
    return out


@pytest.mark.parametrize("name, pattern", FORBIDDEN.items(), ids=list(FORBIDDEN))
def test_the_patterns_catch_what_they_are_for(name, pattern):
    caught = {"a commit hash": "as run at b743217", "the course's issues": "see the course's issue",
              "a path outside the repository": "measured in shared/gpu/NOTES.md",
              "the sessions that made the course": "this session measured", "a run history": "the earlier run gave"}
    assert re.search(pattern, caught[name], re.I)
    assert not re.search(pattern, "the frame probe reads digits 0-9 at fd 3.5 in a 4x4x4 grid", re.I)


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_prose_teaches_the_subject_not_the_making_of_the_course(source):
    found = []
    for cell, text in enumerate(prose(source)):
        for name, pattern in FORBIDDEN.items():
            for m in re.finditer(pattern, text, re.I):
                found.append(f"cell {cell}: {name}: …{text[max(0, m.start() - 40):m.end() + 40]!r}…")
    assert not found, f"{source.name}:\n" + "\n".join(found)
