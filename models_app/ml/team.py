"""Running a batch's CPU work on torch's own OpenMP threads.

Between two forward passes on the CPU, the engine counts statistics and top-K and writes the
batch's rows. torch's other OpenMP thread meanwhile spins (GNU OpenMP waits actively for the next
parallel region, hundreds of thousands of turns), holding the core a thread of our own would need:
a writer thread then lands on the core the counting runs on and takes turns with it, and a second
counting thread waits for the spinner. So the work is handed to those very threads instead: one
OpenMP parallel region of torch's runtime (`GOMP_parallel` of the libgomp torch loaded) in which
each thread takes the next job until none is left. The spinner picks it up at once, and no third
thread competes for the two cores (bench/README.md, "At the limit in every setting").

The team is as many of torch's threads as there are jobs (torch's count at most): two on this
project's two-core machines. Where torch's threads are not GNU OpenMP's (another platform,
another build) or there is one, the jobs run one after another on the calling thread
(`available()` says which).
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
    """torch's OpenMP runtime, if it is GNU's, or None. The symbols are looked up through
    libtorch_cpu, already loaded (RTLD_NOLOAD), which finds them in the runtime torch itself
    linked, whatever its file is called (wheels may bundle a renamed libgomp) and whatever other
    OpenMP runtime another package loaded: a second runtime's threads would be more threads
    competing for the cores, not torch's."""
    if "OpenMP" not in torch.__config__.parallel_info().split("ATen parallel backend:")[-1]:
        return None
    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(library, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        lib.GOMP_parallel.argtypes = [_REGION, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    except (OSError, AttributeError):  # not Linux, no such library, or its OpenMP is not GNU's
        return None
    lib.GOMP_parallel.restype = None
    lib.omp_in_parallel.restype = ctypes.c_int
    return lib


def available() -> bool:
    """Whether run() shares the jobs among two or more of torch's threads."""
    return _libgomp() is not None and torch.get_num_threads() > 1


def run(jobs: Sequence[Callable[[], None]]) -> None:
    """Runs every job, each once, on torch's OpenMP threads: each thread takes the next job in
    order until none is left, so put the longest first. Returns when all are done. The first
    error raised by a job is raised here, once the jobs already started have ended; the others
    still run, except after a KeyboardInterrupt or SystemExit, which stops the rest and is raised
    first. Jobs run in parallel: they must not write what another reads. torch's inference and
    grad modes, which are per thread, are the caller's in every job. Inside a parallel region
    (a job of another run) the jobs run one after another."""
    lib = _libgomp()
    threads = min(torch.get_num_threads(), len(jobs))
    if lib is None or threads < 2 or lib.omp_in_parallel():
        for job in jobs:
            job()
        return
    pending = list(reversed(jobs))  # list.pop() is atomic under the GIL: a job goes to one thread
    errors: list[BaseException] = []
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def each_thread(_data: int | None) -> None:
        # A ctypes callback cannot raise (it would print and go on): every error is kept for the
        # caller. The main thread is one of the team, so a Ctrl-C may arrive here.
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                while pending:
                    try:
                        job = pending.pop()
                    except IndexError:  # another thread took the last one
                        return
                    try:
                        job()
                    except Exception as exc:
                        errors.append(exc)
        except BaseException as exc:
            pending.clear()
            errors.insert(0, exc)

    region = _REGION(each_thread)  # referenced until GOMP_parallel returns
    lib.GOMP_parallel(region, None, threads, 0)
    if errors:
        raise errors[0]
