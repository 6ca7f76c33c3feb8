"""Real interruptions: Ctrl-C, SIGTERM or a closed terminal (SIGHUP) of a manage.py job command,
which prints one line and exits with 128 + the signal, and a worker killed with SIGKILL
mid-download (mid-extraction: test_resume_after_kill.py). Each ends in a final state, never a
stuck record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from models_app.models import LOST_WORKER_MESSAGE, Dataset, Extraction, LanguageModel
from tests.helpers import HTMX, wait_for
from tests.terminal import Terminal
from tests.workers import ROOT, kill_the_job, studio_env

# Slow: signals and pseudo-terminals to manage.py commands, qclusters killed mid-job.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def model_state(pk: int) -> LanguageModel:
    return LanguageModel.objects.get(pk=pk)


DOWNLOAD_CANCELLED = "Cancelled: the download stopped and its files were removed."


def start_command(settings, hub, *args: str) -> subprocess.Popen:
    """A manage.py command in a process group of its own (a terminal's job), output in pipes."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=studio_env(settings, hub.endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def slow_download(hub) -> tuple[str, ...]:
    hub.repos["tiny/llama"].bytes_per_second = 200_000
    return "download_model", "tiny/llama", "--quantization", "Q4"


def downloading() -> LanguageModel:
    return wait_for(
        lambda: LanguageModel.objects.first(), lambda r: r is not None and r.bytes_downloaded > 200_000
    )


def assert_download_cancelled(record: LanguageModel, settings) -> None:
    record.refresh_from_db()
    assert record.status == "cancelled" and record.quantization == "q4"
    assert not (settings.HF_CACHE_DIR / "models--tiny--llama").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_it_cancels_a_download_with_one_line_when_its_process_group_is_signalled(hub, settings, signum):
    """What a terminal's Ctrl-C (SIGINT) and hang-up (SIGHUP), or a service manager's stop
    (SIGTERM), do: signal every process of the job, the download's child process included."""
    command = start_command(settings, hub, *slow_download(hub))
    record = downloading()
    os.killpg(command.pid, signum)
    out, err = command.communicate(timeout=30)
    assert (out.splitlines(), err.splitlines()) == (
        [f"Model {record.pk}: tiny/llama@main (Q4)"],
        [DOWNLOAD_CANCELLED],
    )
    assert command.returncode == 128 + signum
    assert_download_cancelled(record, settings)


def test_it_prints_one_line_and_exits_130_on_ctrl_c_in_a_terminal(hub, settings):
    terminal = Terminal(
        [sys.executable, "manage.py", *slow_download(hub)], ROOT, studio_env(settings, hub.endpoint)
    )
    record = downloading()
    terminal.type(b"\x03")
    assert terminal.wait(30) == 130
    assert b"Traceback" not in terminal.output and b"KeyboardInterrupt" not in terminal.output
    assert terminal.screen_lines() == [f"Model {record.pk}: tiny/llama@main (Q4)", DOWNLOAD_CANCELLED]
    assert_download_cancelled(record, settings)


def test_it_cancels_the_download_when_its_terminal_is_closed(hub, settings):
    terminal = Terminal(
        [sys.executable, "manage.py", *slow_download(hub)], ROOT, studio_env(settings, hub.endpoint)
    )
    record = downloading()
    terminal.hang_up()
    assert terminal.wait(30) == 128 + signal.SIGHUP
    assert_download_cancelled(record, settings)


def child_pids(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (its new parent may not reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_it_ends_the_download_child_when_the_command_is_killed(hub, settings):
    """The child runs in a session of its own, out of reach of the terminal's signals: it still
    ends when the command that started it is gone."""
    command = start_command(settings, hub, *slow_download(hub))
    downloading()
    child = child_pids(command.pid)
    assert len(child) == 1
    command.kill()
    command.wait(10)
    wait_for(lambda: running(child[0]), lambda alive: not alive, timeout=5)


def test_it_cancels_a_hub_dataset_with_one_line_on_ctrl_c(hub, settings, slow_dataset_repo):
    command = start_command(settings, hub, "add_dataset", slow_dataset_repo)
    wait_for(
        lambda: Dataset.objects.first(),
        lambda r: r is not None and r.progress_detail.startswith("Downloading:"),
    )
    os.killpg(command.pid, signal.SIGINT)
    out, err = command.communicate(timeout=30)
    assert (out, err.splitlines()) == (
        "",
        ["Cancelled: the dataset was not added and its files were removed."],
    )
    assert command.returncode == 130
    assert not Dataset.objects.exists() and not any(settings.DATASETS_DIR.glob("*/*"))


def test_ctrl_c_cancels_an_extraction_with_one_line_and_retry_extraction_continues_it(
    hub, settings, tmp_path
):
    call_command(
        "download_model", "tiny/llama", "--quantization", "fp32", stdout=StringIO(), stderr=StringIO()
    )
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(f"line {i} " + "word " * 60 for i in range(300)))
    call_command("add_dataset", str(corpus), "--name", "long", stdout=StringIO())
    model, dataset = LanguageModel.objects.get(), Dataset.objects.get()
    command = start_command(
        settings,
        hub,
        "extract_activations",
        str(model.pk),
        "--dataset",
        str(dataset.pk),
        "--layers",
        "0,1",
        "--batch-size",
        "1",
        "--context-length",
        "64",
        "--dtype",
        "float32",
    )
    record = wait_for(
        lambda: Extraction.objects.first(), lambda r: r is not None and r.samples_done >= 20, timeout=90
    )
    os.killpg(command.pid, signal.SIGINT)
    out, err = command.communicate(timeout=30)
    record.refresh_from_db()
    kept = record.resume_point
    assert record.status == "cancelled" and kept is not None and kept["samples_total"] == 300
    assert (out.splitlines(), err.splitlines()) == (
        [f"Extraction {record.pk}: llama on long"],
        [
            f"Cancelled: {kept['samples_done']} of 300 samples are kept;"
            f" `manage.py retry_extraction {record.pk}` continues from them."
        ],
    )
    assert command.returncode == 130

    out = StringIO()
    call_command("retry_extraction", str(record.pk), stdout=out)
    record.refresh_from_db()
    assert record.status == "completed" and record.metadata["resumed_from_sample"] == kept["samples_done"]
    assert out.getvalue().splitlines() == [
        f"Extraction {record.pk}: llama on long, from sample {kept['samples_done']}",
        f"Completed: 300 samples, continued from sample {kept['samples_done']}"
        f" in {record.metadata['timings']['seconds']:.1f}s -> {record.output_path}",
    ]


def test_a_worker_killed_mid_download_is_failed_and_retry_completes(owner_client, hub, settings, clusters):
    hub.repos["tiny/llama"].bytes_per_second = 250_000
    owner_client.post(
        reverse("models_app:download"), {"repo_id": "tiny/llama", "quantization": "fp16"}, **HTMX
    )
    pk = LanguageModel.objects.get().pk
    record = wait_for(lambda: model_state(pk), lambda r: r.bytes_downloaded > 300_000)
    killed = kill_the_job(record)
    card = wait_for(
        lambda: owner_client.get(reverse("models_app:card", args=[pk]), **HTMX).content.decode(),
        lambda html: LOST_WORKER_MESSAGE in html,
        timeout=settings.JOB_STALE_SECONDS + 10,
    )
    assert time.monotonic() - killed < settings.JOB_STALE_SECONDS + 5
    assert "Retry" in card and model_state(pk).status == "error"

    hub.repos["tiny/llama"].bytes_per_second = None
    owner_client.post(reverse("models_app:restart", args=[pk]), {"quantization": "fp16"}, **HTMX)
    record = wait_for(lambda: model_state(pk), lambda r: r.status in ("ready", "error"), timeout=90)
    assert record.status == "ready", record.error_message
    assert record.attempts == 2 and record.last_error == LOST_WORKER_MESSAGE
    assert (
        Path(record.file_path, "model.safetensors").stat().st_size
        == (hub.repos["tiny/llama"].folder / "model.safetensors").stat().st_size
    )
