"""git_commit names the code that ran: the commit, marked dirty when the package, a notebook source or shipped data
differs from it (what a build writes does not count), or $VGCOURSE_COMMIT where the tree travels without .git."""

import subprocess

import pytest

from vgcourse import results


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    for path in ("vgcourse/a.py", "notebooks/src/01_x.py", "data/weights/SHA256SUMS", "notebooks/01_x.ipynb",
                 "notebooks/results/01_x.json"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("0\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)
    monkeypatch.delenv("VGCOURSE_COMMIT", raising=False)
    return tmp_path


def test_a_clean_tree_is_named_by_its_commit(repo):
    assert results.git_commit() == git(repo, "rev-parse", "--short", "HEAD")


@pytest.mark.parametrize("edited", ["vgcourse/a.py", "notebooks/src/01_x.py", "data/weights/SHA256SUMS"])
def test_an_edited_source_marks_the_commit_dirty(repo, edited):
    (repo / edited).write_text("1\n")
    assert results.git_commit() == git(repo, "rev-parse", "--short", "HEAD") + "-dirty"


@pytest.mark.parametrize("written", ["notebooks/01_x.ipynb", "notebooks/results/01_x.json"])
def test_what_a_build_writes_does_not_mark_it_dirty(repo, written):
    (repo / written).write_text("1\n")
    assert results.git_commit() == git(repo, "rev-parse", "--short", "HEAD")


def test_the_environment_variable_names_a_tree_without_git(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)          # no .git here
    monkeypatch.setenv("VGCOURSE_COMMIT", "abc1234")
    assert results.git_commit() == "abc1234"
    monkeypatch.delenv("VGCOURSE_COMMIT")
    assert results.git_commit() is None
