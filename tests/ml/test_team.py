"""ml/team.py: a batch's jobs on torch's own OpenMP threads, each job once, errors and torch's
per-thread modes carried back and forth."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from models_app.ml import team


@pytest.fixture
def torch_threads():
    """torch.set_num_threads for this test; the count the host gave is restored afterwards."""
    before = torch.get_num_threads()
    try:
        yield torch.set_num_threads
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def two_threads(torch_threads):
    torch_threads(2)


def test_it_is_available_on_linux_with_torch_on_gnu_openmp(two_threads):
    # The engine's CPU path depends on it; CI runs Linux with the torch wheel, which uses libgomp.
    assert "OpenMP" in torch.__config__.parallel_info()
    assert team.available()


def test_it_runs_every_job_once(two_threads):
    done: list[int] = []
    jobs = [lambda number=number: done.append(number) for number in range(50)]

    team.run(jobs)

    assert sorted(done) == list(range(50))


def test_it_shares_the_jobs_between_two_threads(two_threads):
    threads: set[int] = set()
    both = threading.Barrier(2, timeout=10)

    def job() -> None:
        threads.add(threading.get_ident())
        both.wait()  # returns only once a second thread runs a job at the same time

    team.run([job, job])

    assert len(threads) == 2
    assert threading.get_ident() in threads  # the caller is one of them


def test_the_other_thread_is_one_of_torchs_own(two_threads):
    torch.ones(1 << 20).sin_().sum()  # a parallel region of torch's: its pool's threads exist
    before = set(os.listdir("/proc/self/task"))
    threads: set[int] = set()
    both = threading.Barrier(2, timeout=10)

    def job() -> None:
        threads.add(threading.get_native_id())
        both.wait()

    team.run([job, job])

    pythons = {thread.native_id for thread in threading.enumerate()}
    others = threads - pythons
    assert len(threads) == 2 and len(others) == 1  # the caller, and one no Python thread
    assert {str(native) for native in others} <= before  # that was there before: torch's, not new
    assert set(os.listdir("/proc/self/task")) == before


def test_it_raises_the_first_error_after_every_job_ran(two_threads):
    done: list[str] = []

    def fails() -> None:
        raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        team.run([fails, lambda: done.append("a"), lambda: done.append("b")])

    assert sorted(done) == ["a", "b"]


def test_a_keyboard_interrupt_stops_the_jobs_left_and_is_raised_before_other_errors(two_threads):
    done: list[int] = []
    started = threading.Barrier(2, timeout=10)

    def fails() -> None:
        started.wait()
        raise ValueError("an earlier error")

    def interrupted() -> None:
        started.wait()
        time.sleep(0.05)  # after the other error
        raise KeyboardInterrupt

    def later(n: int) -> None:
        time.sleep(0.01)
        done.append(n)

    later_jobs = [lambda n=n: later(n) for n in range(20)]
    with pytest.raises(KeyboardInterrupt):
        team.run([fails, interrupted, *later_jobs])

    assert len(done) < 20


def test_the_jobs_run_in_the_callers_inference_mode(two_threads):
    modes: list[bool] = []

    def job() -> None:
        modes.append(torch.is_inference_mode_enabled())
        time.sleep(0.05)

    with torch.inference_mode():
        team.run([job, job])
    team.run([job, job])

    assert modes == [True, True, False, False]


def test_an_inference_tensor_can_be_updated_in_place_on_either_thread(two_threads):
    both = threading.Barrier(2, timeout=10)

    def add_one(total: torch.Tensor) -> None:
        both.wait()  # each job on its own thread
        total.add_(1.0)

    with torch.inference_mode():
        sums = [torch.zeros(()) for _ in range(2)]
        team.run([lambda s=s: add_one(s) for s in sums])

    assert [s.item() for s in sums] == [1.0, 1.0]


def test_a_run_inside_a_job_runs_its_jobs_on_that_thread(two_threads):
    inner: dict[int, list[int]] = {}
    both = threading.Barrier(2, timeout=10)

    def job() -> None:
        both.wait()  # inside the region, one job on each thread
        me = threading.get_native_id()
        inner[me] = []
        team.run([lambda: inner[me].append(threading.get_native_id()) for _ in range(3)])

    team.run([job, job])

    assert len(inner) == 2
    assert all(ran == [me] * 3 for me, ran in inner.items())


def test_with_one_thread_the_jobs_run_in_order_on_the_caller(torch_threads):
    torch_threads(1)
    seen: list[tuple[int, int]] = []
    jobs = [lambda n=n: seen.append((n, threading.get_ident())) for n in range(5)]

    assert not team.available()
    team.run(jobs)

    assert seen == [(n, threading.get_ident()) for n in range(5)]
