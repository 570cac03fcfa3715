"""Shared test setup: one CPU thread per test process (tiny models run faster so, and CI has 2 cores). The time limit
of every test is in the repository's conftest.py."""

import os

import pytest
import torch

os.environ.setdefault("VGCOURSE_PROFILE", "smoke")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
