"""A batch's turn at its model's engine lock ends at the batch's last step, so the
next batch can reach the engine while this one's images come back; which models
hand off early (``ENGINE_HANDOFF``)."""

from __future__ import annotations

import threading

from imagehub.services.generation import _EngineTurn


def test_the_turn_ends_at_the_last_step_once_for_the_whole_batch() -> None:
    lock = threading.Lock()
    free_at: list[tuple[int, bool]] = []

    def record(step: int, total: int) -> None:
        free_at.append((step, not lock.locked()))

    with _EngineTurn(lock) as turn:
        steps = turn.until_last_step([record, record])  # two requests in the batch
        for step in (1, 2, 3):
            for on_step in steps:
                on_step(step, 3)
        assert lock.acquire(blocking=False)  # the next batch got in before this call returned
        lock.release()
    # leaving did not release it a second time (that would raise RuntimeError)
    assert free_at == [(1, False), (1, False), (2, False), (2, False), (3, True), (3, True)]
    assert not lock.locked()


def test_a_run_that_never_reaches_its_last_step_ends_its_turn_on_leaving() -> None:
    lock = threading.Lock()
    with _EngineTurn(lock) as turn:
        [on_step] = turn.until_last_step([lambda step, total: None])
        on_step(1, 4)  # cancelled after the first of four steps
        assert lock.locked()
    assert not lock.locked()


def test_the_next_batch_waits_for_the_turn_until_the_last_step() -> None:
    lock = threading.Lock()
    entered = threading.Event()

    def next_batch() -> None:
        with _EngineTurn(lock):
            entered.set()

    with _EngineTurn(lock) as turn:
        [on_step] = turn.until_last_step([lambda step, total: None])
        waiter = threading.Thread(target=next_batch)
        waiter.start()
        on_step(1, 2)
        assert not entered.wait(0.2)
        on_step(2, 2)
        assert entered.wait(5)
    waiter.join(5)


def test_the_hand_off_is_for_batched_models_off_the_cpu_unless_set(tiny_sd_dir) -> None:
    from imagehub.engines.builtin import BuiltinEngine
    from imagehub.engines.diffusers import DiffusersEngine
    from imagehub.services.generation import hands_off_early

    on_cpu = DiffusersEngine(str(tiny_sd_dir), device="cpu")
    on_gpu = DiffusersEngine(str(tiny_sd_dir), device="cuda:0")  # built, not loaded: no GPU needed
    one_by_one = BuiltinEngine()

    assert [hands_off_early(e, "auto") for e in (on_cpu, on_gpu, one_by_one)] == [False, True, False]
    assert [hands_off_early(e, True) for e in (on_cpu, on_gpu, one_by_one)] == [True, True, False]
    assert [hands_off_early(e, False) for e in (on_cpu, on_gpu, one_by_one)] == [False, False, False]


def test_by_default_a_gpu_model_takes_one_call_at_a_time(tiny_sd_dir) -> None:
    """The hand-off is opt-in: on an H100 it made smaller batches and served no faster."""
    from imagehub.config import Settings
    from imagehub.engines.diffusers import DiffusersEngine
    from imagehub.services.generation import hands_off_early

    on_gpu = DiffusersEngine(str(tiny_sd_dir), device="cuda:0")  # built, not loaded: no GPU needed

    assert hands_off_early(on_gpu, Settings().engine_handoff) is False


def test_copies_run_a_batch_each_at_once_and_never_hand_off_early(tiny_sd_dir) -> None:
    """With ``replicas`` each copy has a turn of its own; a turn given back at the last step
    would send the next batch to a copy still busy, so the hand-off is off for copies."""
    from imagehub.engines.diffusers import DiffusersEngine
    from imagehub.services.generation import _copies, hands_off_early

    two = DiffusersEngine(str(tiny_sd_dir), device="cuda:0", replicas=2)  # built, not loaded

    assert _copies(two) == 2 and hands_off_early(two, True) is False


def test_the_turn_goes_to_whoever_waited_first() -> None:
    """A worker that gives the turn back and asks again at once waits behind the one that was
    already waiting (a plain Semaphore let it barge in, batch after batch)."""
    from imagehub.services.generation import FairSemaphore

    turns = FairSemaphore(1)
    order: list[str] = []
    waiting = threading.Event()

    def other() -> None:
        waiting.set()
        with _EngineTurn(turns):
            order.append("other")

    turns.acquire()
    thread = threading.Thread(target=other)
    thread.start()
    waiting.wait(5)
    while not turns._waiting:  # the other worker is in line
        pass
    turns.release()
    with _EngineTurn(turns):  # released and asked again at once: behind the other
        order.append("again")
    thread.join(5)
    assert order == ["other", "again"]
