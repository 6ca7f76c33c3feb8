"""Running a batch's CPU work on torch's own OpenMP threads.

Between two forward passes on the CPU, the engine counts statistics and top-K and writes the
batch's rows. torch's other OpenMP thread meanwhile spins (GNU OpenMP waits actively for the next
parallel region, hundreds of thousands of turns), holding the core a thread of our own would need:
a writer thread then lands on the core the counting runs on and takes turns with it, and a second
counting thread waits for the spinner. So the work is handed to those very threads instead: one
OpenMP parallel region of torch's runtime (`GOMP_parallel` of the libgomp torch loaded) in which
each thread takes the next job until none is left. The spinner picks it up at once, and no third
thread competes for the two cores (bench/README.md, "At the limit in every setting").

Where torch's threads are not GNU OpenMP's (another platform, another build) or there is one, the
jobs run one after another on the calling thread (`available()` says which).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Sequence

import torch

_REGION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@functools.cache
def _libgomp() -> ctypes.CDLL | None:
    """The libgomp torch has loaded (RTLD_NOLOAD: never a second copy, whose threads would be
    a third and fourth competing for the cores), or None."""
    if "OpenMP" not in torch.__config__.parallel_info().split("ATen parallel backend:")[-1]:
        return None
    try:
        lib = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):  # not loaded, or no RTLD_NOLOAD (not Linux)
        return None
    lib.GOMP_parallel.argtypes = [_REGION, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    lib.GOMP_parallel.restype = None
    lib.omp_in_parallel.restype = ctypes.c_int
    return lib


def available() -> bool:
    """Whether run() shares the jobs among two or more of torch's threads."""
    return _libgomp() is not None and torch.get_num_threads() > 1


def run(jobs: Sequence[Callable[[], None]]) -> None:
    """Runs every job, each once, on torch's OpenMP threads: each thread takes the next job in
    order until none is left, so put the longest first. Returns when all are done; the first
    error raised by a job is raised here (the other jobs still run). Jobs run in parallel: they
    must not write what another reads. torch's inference and grad modes, which are per thread,
    are the caller's in every job."""
    lib = _libgomp()
    if lib is None or torch.get_num_threads() < 2 or lib.omp_in_parallel():
        for job in jobs:
            job()
        return
    pending = list(reversed(jobs))  # list.pop() is atomic under the GIL: a job goes to one thread
    errors: list[BaseException] = []
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def each_thread(_data: int | None) -> None:
        # A ctypes callback cannot raise: every error is kept for the caller.
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                while pending:
                    try:
                        job = pending.pop()
                    except IndexError:  # another thread took the last one
                        return
                    try:
                        job()
                    except BaseException as exc:
                        errors.append(exc)
        except BaseException as exc:
            errors.append(exc)

    region = _REGION(each_thread)  # referenced until GOMP_parallel returns
    lib.GOMP_parallel(region, None, torch.get_num_threads(), 0)
    if errors:
        raise errors[0]
