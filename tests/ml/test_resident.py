"""The in-memory model cache of a worker: least recently used first out, bounded in bytes, never
handing out a model built from other files, never keeping one a use left changed."""

from __future__ import annotations

import os

from torch import nn

from models_app.ml.resident import ResidentModels, count_hooks, files_identity


class Loaded:
    """Stands for a LoadedModel: the cache keeps whatever it is given."""

    def __init__(self) -> None:
        self.model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)).eval()


def keep(cache: ResidentModels, key, nbytes: int, identity="v1") -> Loaded:
    loaded = Loaded()
    assert cache.put(key, identity, loaded, nbytes, loaded.model, count_hooks(loaded.model))
    return loaded


def test_it_hands_back_the_model_it_was_given_for_the_same_identity():
    cache = ResidentModels(1000)
    loaded = keep(cache, "a", 100)
    assert cache.get("a", "v1") is loaded
    assert cache.get("b", "v1") is None


def test_it_releases_an_entry_whose_identity_changed_instead_of_handing_it_out():
    cache = ResidentModels(1000)
    keep(cache, "a", 100, identity="commit-1")
    assert cache.get("a", "commit-2") is None
    assert "a" not in cache
    assert cache.get("a", "commit-1") is None  # gone, not merely hidden


def test_it_releases_the_least_recently_used_models_to_stay_within_its_budget():
    cache = ResidentModels(300)
    keep(cache, "a", 100)
    keep(cache, "b", 100)
    keep(cache, "c", 100)
    cache.get("a", "v1")  # a is now more recent than b
    keep(cache, "d", 100)
    assert [key for key, _ in cache.snapshot()] == ["c", "a", "d"]
    assert cache.nbytes == 300


def test_it_keeps_nothing_larger_than_its_budget_and_nothing_with_a_budget_of_zero():
    cache = ResidentModels(100)
    keep(cache, "a", 50)
    loaded = Loaded()
    assert not cache.put("b", "v1", loaded, 101, loaded.model, count_hooks(loaded.model))
    assert [key for key, _ in cache.snapshot()] == ["a"]
    off = ResidentModels(0)
    assert not off.put("a", "v1", loaded, 1, loaded.model, count_hooks(loaded.model))
    assert len(off) == 0


def test_it_makes_room_for_a_model_about_to_be_loaded():
    cache = ResidentModels(300)
    for key in "abc":
        keep(cache, key, 100)
    cache.make_room(150, keep=["a"])
    assert [key for key, _ in cache.snapshot()] == ["a"]  # b then c, the least recent, went
    assert cache.nbytes <= 300 - 150


def test_it_does_not_keep_a_model_that_a_use_left_a_hook_on_or_in_training_mode():
    cache = ResidentModels(1000)
    loaded = keep(cache, "a", 100)
    hooks = count_hooks(loaded.model)
    handle = loaded.model[0].register_forward_hook(lambda *args: None)
    assert not cache.put("a", "v1", loaded, 100, loaded.model, hooks)
    assert "a" not in cache
    handle.remove()

    loaded = keep(cache, "b", 100)
    loaded.model.train()
    assert not cache.put("b", "v1", loaded, 100, loaded.model, count_hooks(loaded.model))
    assert "b" not in cache


def test_it_counts_hooks_a_loader_left_without_calling_the_model_unclean():
    model = nn.Linear(2, 2).eval()
    model.register_forward_pre_hook(lambda *args: None)  # as accelerate's device hooks would be
    cache = ResidentModels(1000)
    hooks = count_hooks(model)
    assert hooks == 1
    assert cache.put("a", "v1", model, 10, model, hooks)
    assert cache.get("a", "v1") is model


def test_it_releases_what_a_check_finds_stale():
    cache = ResidentModels(1000)
    for key in (1, 2, 3):
        keep(cache, (key, "fp32"), 100)
    released = cache.discard_where(lambda key, identity: key[0] != 2)
    assert released == [(1, "fp32"), (3, "fp32")]
    assert [key for key, _ in cache.snapshot()] == [(2, "fp32")]
    assert cache.discard((2, "fp32")) and len(cache) == 0


def test_it_sees_a_file_written_again_with_the_same_bytes_as_a_change(tmp_path):
    model, quantized = tmp_path / "snapshot", tmp_path / "q4"
    model.mkdir()
    quantized.mkdir()
    blob = tmp_path / "blob"
    blob.write_bytes(b"weights")
    (model / "model.safetensors").symlink_to(blob)  # the Hub cache's layout
    (quantized / "config.json").write_text("{}")
    before = files_identity(model, quantized, None)
    assert files_identity(model, quantized) == before
    replacement = tmp_path / "blob.new"
    replacement.write_bytes(b"weights")
    os.replace(replacement, blob)  # a download writes a new file and renames it into place
    assert files_identity(model, quantized) != before
    now = files_identity(model, quantized)
    (quantized / "config.json").unlink()
    assert files_identity(model, quantized) != now


def test_it_counts_forward_and_backward_hooks_of_every_module():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    assert count_hooks(model) == 0
    model[0].register_forward_hook(lambda *args: None)
    model[1].register_forward_pre_hook(lambda *args: None)
    model.register_full_backward_hook(lambda *args: None)
    assert count_hooks(model) == 3
