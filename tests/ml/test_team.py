"""ml/team.py: a batch's jobs on torch's own OpenMP threads, each job once, errors and torch's
per-thread modes carried back and forth."""

from __future__ import annotations

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


def test_the_other_thread_is_torchs_own(two_threads):
    torch.ones(1 << 20).sin_().sum()  # a parallel region of torch's: its thread exists
    threads: set[int] = set()

    def job() -> None:
        threads.add(threading.get_ident())
        time.sleep(0.05)  # holds this thread, so that the other job goes to the other

    team.run([job, job])

    pythons = {thread.ident for thread in threading.enumerate()}
    assert len(threads) == 2
    assert threads - pythons  # one of them is no thread Python made: OpenMP's


def test_it_raises_the_first_error_after_every_job_ran(two_threads):
    done: list[str] = []

    def fails() -> None:
        raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        team.run([fails, lambda: done.append("a"), lambda: done.append("b")])

    assert sorted(done) == ["a", "b"]


def test_the_jobs_run_in_the_callers_inference_mode(two_threads):
    modes: list[bool] = []

    def job() -> None:
        modes.append(torch.is_inference_mode_enabled())
        time.sleep(0.05)

    with torch.inference_mode():
        team.run([job, job])
    team.run([job, job])

    assert modes == [True, True, False, False]


def test_an_inference_tensor_can_be_updated_in_place_in_a_job(two_threads):
    with torch.inference_mode():
        sums = [torch.zeros(()) for _ in range(4)]
        team.run([lambda s=s: s.add_(1.0) for s in sums])

    assert [s.item() for s in sums] == [1.0] * 4


def test_with_one_thread_the_jobs_run_in_order_on_the_caller(torch_threads):
    torch_threads(1)
    seen: list[tuple[int, int]] = []
    jobs = [lambda n=n: seen.append((n, threading.get_ident())) for n in range(5)]

    assert not team.available()
    team.run(jobs)

    assert seen == [(n, threading.get_ident()) for n in range(5)]
