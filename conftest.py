"""A time limit on every test, the unit tests' and the notebooks' cells under nbval alike, so that none can hang the
suite (a process that waits forever on a socket, a kernel that never answers)."""

import faulthandler
import signal
import threading

import pytest

DEFAULT_TIMEOUT_S = 300  # per test (an nbval cell is a test); @pytest.mark.timeout(seconds) sets another
HARD_STOP_AFTER_S = 60  # past the limit, a test stuck where the limit cannot interrupt it ends the whole run


def pytest_configure(config):
    config.addinivalue_line("markers", f"timeout(seconds): fail the test past this many seconds of wall time "
                                       f"(default {DEFAULT_TIMEOUT_S})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Fail the test, saying so, when it runs past its limit (SIGALRM interrupts Python code, waits on processes and
    sockets); if it is stuck in C code that the alarm cannot interrupt, dump every thread's stack and exit."""
    marker = item.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker else DEFAULT_TIMEOUT_S
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        pytest.fail(f"{item.nodeid} ran past its time limit of {limit:g} s (set with @pytest.mark.timeout, default "
                    f"{DEFAULT_TIMEOUT_S} s in conftest.py)", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    faulthandler.dump_traceback_later(limit + HARD_STOP_AFTER_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
