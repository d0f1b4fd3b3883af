"""The folder result store: attempts never share a staged file, publishing is all or nothing."""

from __future__ import annotations

from pathlib import Path

from app.services.jobs import storage
from app.services.jobs.storage import FolderStore, JobFile
from app.settings import Settings


def test_two_attempts_stage_apart_and_the_published_one_wins(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    store.save_upload("job", original=b"orig", preview=b"prev")
    slow = store.stage("job", JobFile.cutout, b"slow")
    fast = store.stage("job", JobFile.cutout, b"fast")
    assert slow.handle != fast.handle
    assert not store.path_for("job", JobFile.cutout).exists(), "nothing visible before publish"
    store.publish(fast)
    store.discard(slow)  # the attempt given up for dead cleans up its own file only
    assert store.read("job", JobFile.cutout) == b"fast"
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == [
        "before.jpg",
        "cutout.png",
        "original",
    ]
    store.delete_job("job")
    assert not (tmp_path / "job").exists()


def test_the_results_folder_is_a_setting(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    settings = Settings(data_dir=tmp_path / "data", results_folder=shared)
    storage.save_upload(settings, "abc", original=b"o", preview=b"p")
    assert (shared / "abc" / "original").read_bytes() == b"o"
    assert storage.read_original(settings, "abc") == b"o"
    staged = storage.stage_result(settings, "abc", b"png")
    storage.publish_result(staged)
    assert storage.file_path(settings, "abc", JobFile.cutout).read_bytes() == b"png"
