"""Exercises: a stub the learner fills, a check that says what is wrong, and a tested solution.

In a notebook::

    def shuffle_frames(video, generator):
        # YOUR CODE HERE
        raise NotImplementedError

    check("shuffle_frames", shuffle_frames)   # -> "not attempted yet" / "pass" / "wrong: ..."

The solutions live beside their checks (``solution("shuffle_frames")``); the tests run every solution through
its own check, every untouched stub must read "not attempted yet", and known-wrong answers must fail.
Exercises are grouped by concept in the modules of this package and registered by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

PASS, FAIL, NOT_ATTEMPTED = "pass", "fail", "not attempted yet"


class Wrong(AssertionError):
    """Raised by a check with a message for the learner."""


@dataclass
class CheckResult:
    name: str
    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def __str__(self) -> str:
        mark = {"pass": "✔", "fail": "✘", NOT_ATTEMPTED: "…"}[self.status]
        return f"{mark} {self.name}: {self.status}" + (f" — {self.message}" if self.message else "")

    def _repr_html_(self) -> str:
        colour = {"pass": "#1a7f37", "fail": "#cf222e", NOT_ATTEMPTED: "#6e7781"}[self.status]
        return f'<span style="color:{colour}; font-weight:bold">{self}</span>'

    __repr__ = __str__


@dataclass
class Exercise:
    name: str
    prompt: str
    check: Callable[[Callable], None]  # raises Wrong (or any error) when the answer is wrong
    solution: Callable


REGISTRY: dict[str, Exercise] = {}


def exercise(name: str, prompt: str, solution: Callable) -> Callable[[Callable[[Callable], None]], Callable]:
    """Decorator registering ``check_fn(answer)`` as the check of exercise ``name``."""

    def register(check_fn: Callable[[Callable], None]) -> Callable[[Callable], None]:
        if name in REGISTRY:
            raise ValueError(f"exercise {name!r} is registered twice")
        REGISTRY[name] = Exercise(name, prompt, check_fn, solution)
        return check_fn

    return register


def _load_all() -> None:
    """Import every exercise module of this package (each registers its exercises when imported)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def check(name: str, answer: Callable) -> CheckResult:
    """Run exercise ``name``'s check on the learner's ``answer``."""
    _load_all()
    if name not in REGISTRY:
        raise KeyError(f"no exercise {name!r}; exercises are {sorted(REGISTRY)}")
    try:
        REGISTRY[name].check(answer)
    except NotImplementedError as err:
        if not str(err):  # the stub's bare `raise NotImplementedError`
            return CheckResult(name, NOT_ATTEMPTED)
        # raised with a message, by something the answer called (torch has no `&` on float tensors, for one)
        return CheckResult(name, FAIL, f"your function raised NotImplementedError: {err}")
    except Wrong as err:
        return CheckResult(name, FAIL, str(err))
    except Exception as err:  # the learner's code crashed: say where
        return CheckResult(name, FAIL, f"your function raised {type(err).__name__}: {err}")
    return CheckResult(name, PASS)


def solution(name: str) -> Callable:
    """The reference solution of exercise ``name`` (try first, then look)."""
    _load_all()
    return REGISTRY[name].solution


def all_exercises() -> dict[str, Exercise]:
    _load_all()
    return dict(REGISTRY)
