from __future__ import annotations

import pytest

from models_app.ml import hub, storage
from tests.hubserver import GOOD_TOKEN, NO_ACCESS_TOKEN


@pytest.mark.parametrize(
    "repo_id, fragment",
    [
        ("..", "'..'"),
        ("a/b/c", "single slash"),
        ("has space/model", "spaces"),
        ("x" * 200, "at most 96"),
        ("org/--x", "'--'"),
        ("org/-x", "must not start or end"),
        ("", "Enter a repository id"),
    ],
)
def test_it_rejects_malformed_repo_ids(repo_id, fragment):
    assert fragment in hub.check_repo_id(repo_id)


@pytest.mark.parametrize("repo_id", ["gpt2", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "org/model.v2_x"])
def test_it_accepts_valid_repo_ids(repo_id):
    assert hub.check_repo_id(repo_id) is None


def test_it_previews_a_repo_without_fetching_weights(hub):
    pre = hub_preflight(hub, "tiny/llama")
    assert pre.summary["model_type"] == "llama"
    assert pre.summary["num_layers"] == 2 and pre.summary["hidden_size"] == 128
    assert pre.summary["num_heads"] == 4 and pre.summary["num_kv_heads"] == 2
    assert pre.params_exact and pre.params_count == _num_parameters(hub, "tiny/llama")
    assert {f.path for f in pre.files} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert pre.download_bytes == sum(f.size for f in pre.files) > 1_000_000
    assert pre.memory_by_format["q4"] == int(pre.params_count * 0.5 * 1.2)
    weight_gets = [
        p for m, p, h in hub.requests if m == "GET" and "model.safetensors" in p and "range" not in h
    ]
    assert weight_gets == []  # only ranged reads of the safetensors header


def hub_preflight(server, repo_id, **kwargs):
    return hub.preflight(repo_id, endpoint=server.endpoint, **kwargs)


def _num_parameters(server, repo_id):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        server.repos[repo_id].folder, dtype=torch.float32
    ).num_parameters()


@pytest.mark.parametrize(
    "repo_id, revision, token, field, fragment",
    [
        ("tiny/missing", "main", None, "repo_id", "was not found"),
        ("tiny/llama", "no-such-branch", None, "revision", "Revision 'no-such-branch' does not exist"),
        ("gated/llama", "main", None, "token", "is a gated model"),
        ("gated/llama", "main", NO_ACCESS_TOKEN, "token", "does not grant access"),
        ("gated/llama", "main", "hf_wrong", "token", "rejected by the Hub (401)"),
        ("tiny/bert", "main", None, "repo_id", "not a causal language model"),
    ],
)
def test_it_explains_each_hub_failure(hub, repo_id, revision, token, field, fragment):
    with pytest.raises(hub_module().HubError) as caught:
        hub_preflight(hub, repo_id, revision=revision, token=token)
    assert caught.value.field == field
    assert fragment in caught.value.message
    if token:
        assert token not in caught.value.message


def hub_module():
    return hub


def test_it_reads_a_gated_repo_with_a_good_token(hub):
    pre = hub_preflight(hub, "gated/llama", token=GOOD_TOKEN)
    assert pre.gated is True
    assert pre.params_count > 0


def test_it_downloads_into_the_hf_cache_layout_with_progress(hub, tmp_path):
    pre = hub_preflight(hub, "tiny/gpt2")
    seen = []
    snapshot = hub_download(hub, pre, tmp_path, on_progress=lambda p: seen.append((p.done, p.total)))
    assert snapshot == storage.snapshot_dir(tmp_path, "tiny/gpt2", pre.commit_sha)
    for f in pre.files:
        assert (snapshot / f.path).stat().st_size == f.size
    assert (tmp_path / "models--tiny--gpt2" / "refs" / "main").read_text() == pre.commit_sha
    assert seen[-1] == (pre.download_bytes, pre.download_bytes)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def hub_download(server, pre, cache_dir, **kwargs):
    return hub.download(pre, cache_dir, endpoint=server.endpoint, **kwargs)


def test_it_resumes_after_a_dropped_connection(hub, tmp_path):
    hub.repos["tiny/qwen2"].drop_after_bytes, hub.repos["tiny/qwen2"].drop_times = 600_000, 1
    pre = hub_preflight(hub, "tiny/qwen2")
    snapshot = hub_download(hub, pre, tmp_path)
    weights = snapshot / "model.safetensors"
    assert weights.read_bytes() == (hub.repos["tiny/qwen2"].folder / "model.safetensors").read_bytes()
    # The transfer resumes from the last whole 256 KiB piece it had written.
    ranges = [h.get("range") for m, p, h in hub.requests if m == "GET" and p.endswith("model.safetensors")]
    assert ranges[-2:] == [None, f"bytes={2 * 256 * 1024}-"]


@pytest.mark.slow
def test_it_fails_clearly_when_the_connection_keeps_dropping(hub, tmp_path):
    hub.repos["tiny/qwen3"].drop_after_bytes, hub.repos["tiny/qwen3"].drop_times = 200_000, -1
    pre = hub_preflight(hub, "tiny/qwen3")
    with pytest.raises(hub_module().HubError) as caught:
        hub_download(hub, pre, tmp_path)
    assert "connection" in caught.value.message.lower()


def test_it_cancels_mid_file(hub, tmp_path):
    hub.repos["tiny/mistral"].bytes_per_second = 2_000_000
    pre = hub_preflight(hub, "tiny/mistral")
    state = {"calls": 0}

    def should_cancel():
        state["calls"] += 1
        return state["calls"] > 5

    with pytest.raises(hub_module().DownloadCancelled):
        hub_download(hub, pre, tmp_path, should_cancel=should_cancel)
    snapshot = storage.snapshot_dir(tmp_path, "tiny/mistral", pre.commit_sha)
    assert not (snapshot / "model.safetensors").exists()


def test_it_reports_speed_and_eta():
    progress = hub.DownloadProgress(total=1000)
    progress.window = [(0.0, 0), (1.0, 100)]
    progress.done = 100
    assert progress.speed == pytest.approx(100.0)
    assert progress.eta_seconds == pytest.approx(9.0)
