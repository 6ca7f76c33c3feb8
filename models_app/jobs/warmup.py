"""Worker processes import torch and transformers as they start, not when their first job needs them.

Those imports take seconds (several more on a busy machine), and a job that needs them sat in
"loading" meanwhile. A Django-Q2 worker process announces itself with the `post_spawn` signal
(models_app.apps connects `on_worker_spawn`); the imports then run on a thread of that process
while it already takes jobs, so a download starts transferring at once, and only what needs torch
waits for them (`wait`). The web process and the terminal commands never send that signal, so
they never import torch this way.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

# What a model load and an extraction import (transformers' modeling_utils alone is half of it),
# so the first job finds them in sys.modules. bitsandbytes (Q8, Q4) is optional.
MODULES = (
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "models_app.ml.loading",
    "models_app.ml.hooks",
    "models_app.ml.architecture",
    "models_app.ml.extraction",
)
OPTIONAL = ("bitsandbytes",)
# The task modules, imported on the worker's own thread before the warm-up starts: a job's own
# imports then never run beside the warm-up's (two threads importing into the same packages at
# once can deadlock on the import locks).
TASK_MODULES = ("models_app.jobs.download", "models_app.jobs.dataset", "models_app.jobs.extraction")

_ready = threading.Event()
_ready.set()  # a process that never warms up (web, commands, synchronous runs) waits for nothing
_started = False


def on_worker_spawn(sender=None, proc_name: str = "", **kwargs) -> None:
    """Django-Q2's post_spawn receiver: a worker process is about to take jobs."""
    from django_q.conf import Conf

    if Conf.SYNC:  # a synchronous run executes its task in the caller's own process (tests)
        return
    start()


def start() -> None:
    """Import the task modules here, then everything else on a thread; once."""
    global _started
    if _started:
        return
    _started = True
    _ready.clear()
    try:
        for name in TASK_MODULES:
            importlib.import_module(name)
    except Exception:  # the task that needs it will fail with the reason; the worker must start
        log.exception("worker warm-up: a task module could not be imported")
    threading.Thread(target=_warm, name="warm-up", daemon=True).start()


def wait() -> None:
    """Return once the warm-up (if one runs in this process) has finished its imports: call it
    before importing torch, transformers or models_app.ml's torch modules in a job."""
    _ready.wait()


def _warm() -> None:
    started = time.perf_counter()
    try:
        for name in MODULES:
            importlib.import_module(name)
        for name in OPTIONAL:
            try:
                importlib.import_module(name)
            except Exception as exc:  # not installed, or no backend here: loads fall back anyway
                log.info("warm-up: %s not imported (%s)", name, exc)
        from . import resident

        resident.enable()
    except Exception:
        log.exception("worker warm-up failed; jobs will import what they need themselves")
    finally:
        _ready.set()
    log.info("worker %s warmed up in %.1f s", os.getpid(), time.perf_counter() - started)
