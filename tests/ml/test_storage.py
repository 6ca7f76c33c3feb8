"""Giving the disk back without touching what another model (or download) still uses."""

from __future__ import annotations

from pathlib import Path

from models_app.ml import storage


def make_snapshot(cache: Path, repo_id: str, commit: str, blobs: dict[str, bytes]) -> Path:
    repo = storage.repo_cache_dir(cache, repo_id)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in blobs.items():
        blob = repo / "blobs" / f"sha-{data.decode()}"
        blob.write_bytes(data * 100)
        (snapshot / name).symlink_to(blob)
    return snapshot


def test_it_removes_the_whole_repo_when_no_model_uses_it(tmp_path):
    make_snapshot(tmp_path, "org/m", "c1", {"a.bin": b"a", "b.bin": b"b"})
    (storage.repo_cache_dir(tmp_path, "org/m") / "blobs" / "x.incomplete").write_bytes(b"z" * 50)
    assert storage.remove_snapshot(tmp_path, "org/m", "c1", set()) == 250
    assert not storage.repo_cache_dir(tmp_path, "org/m").exists()


def test_it_keeps_blobs_another_revision_shares_and_downloads_in_progress(tmp_path):
    make_snapshot(tmp_path, "org/m", "c1", {"config.json": b"s", "model.bin": b"1"})
    kept = make_snapshot(tmp_path, "org/m", "c2", {"config.json": b"s", "model.bin": b"2"})
    in_progress = storage.repo_cache_dir(tmp_path, "org/m") / "blobs" / "sha-3.incomplete"
    in_progress.write_bytes(b"3" * 10)
    assert storage.remove_snapshot(tmp_path, "org/m", "c1", {"c2"}) == 100  # only model.bin of c1
    assert (kept / "config.json").read_bytes() == b"s" * 100 and in_progress.exists()
    assert not (storage.repo_cache_dir(tmp_path, "org/m") / "snapshots" / "c1").exists()


def test_it_keeps_a_snapshot_still_in_use(tmp_path):
    snapshot = make_snapshot(tmp_path, "org/m", "c1", {"a.bin": b"a"})
    assert storage.remove_snapshot(tmp_path, "org/m", "c1", {"c1"}) == 0
    assert (snapshot / "a.bin").exists()


def test_it_measures_a_snapshot_by_its_blobs(tmp_path):
    snapshot = make_snapshot(tmp_path, "org/m", "c1", {"a.bin": b"a", "b.bin": b"b"})
    assert storage.snapshot_size(snapshot) == 200
    assert storage.tree_size(storage.repo_cache_dir(tmp_path, "org/m")) == 200
