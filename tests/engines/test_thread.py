"""EngineThread: handed-over calls run on one long-lived thread; results and exceptions come back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from imagehub.engines.thread import EngineThread
from imagehub.errors import GenerationCancelled


def test_calls_from_many_threads_all_run_on_the_one_thread():
    thread = EngineThread("test-engine")
    with ThreadPoolExecutor(8) as callers:
        ran_on = list(callers.map(lambda _: thread.call(threading.get_ident), range(32)))

    assert set(ran_on) == {thread.ident}
    assert thread.ident != threading.get_ident()


def test_the_result_and_the_exception_reach_the_caller():
    thread = EngineThread("test-engine")

    def cancelled(generation_id: str) -> None:
        raise GenerationCancelled(generation_id)

    assert thread.call(pow, 2, 10) == 1024
    with pytest.raises(GenerationCancelled, match="job-7"):
        thread.call(cancelled, "job-7")
    assert thread.call(lambda: "still serving") == "still serving"


def test_a_call_from_the_thread_itself_runs_directly_instead_of_waiting_on_itself():
    thread = EngineThread("test-engine")

    def outer() -> tuple[int, int]:
        return threading.get_ident(), thread.call(threading.get_ident)

    outer_ident, inner_ident = thread.call(outer)
    assert outer_ident == inner_ident == thread.ident


def test_calls_from_many_threads_run_one_at_a_time():
    thread = EngineThread("test-engine")
    active, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.01)
        with lock:
            active -= 1

    with ThreadPoolExecutor(8) as callers:
        list(callers.map(lambda _: thread.call(work), range(16)))

    assert most == 1
