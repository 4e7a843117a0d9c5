"""The per-machine cache of linear evaluation's baselines (random encoder, raw pixels)."""

import json
import os
import shutil

import numpy as np
import pytest

from ssljax.evaluation import baseline_cache as bc


def test_variables_digest_sees_every_value_dtype_and_name():
    a = {"conv": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    same = {"conv": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    assert bc.variables_digest(a) == bc.variables_digest(same)
    changed = {"conv": {"kernel": a["conv"]["kernel"].copy()}}
    changed["conv"]["kernel"][1, 2] = np.nextafter(np.float32(5), np.float32(6))
    renamed = {"conv": {"weight": a["conv"]["kernel"]}}
    widened = {"conv": {"kernel": a["conv"]["kernel"].astype(np.float64)}}
    reshaped = {"conv": {"kernel": a["conv"]["kernel"].reshape(3, 2)}}
    digests = {bc.variables_digest(t) for t in (a, changed, renamed, widened, reshaped)}
    assert len(digests) == 5


def test_cache_key_changes_with_every_field_and_kind_only():
    fields = {"layers": ["block4"], "grid": 3, "probe": {"l2_grid": [1e-4, 1e-3]}}
    key = bc.cache_key("random_init", fields)
    assert key == bc.cache_key("random_init", json.loads(json.dumps(fields)))
    assert key == bc.cache_key("random_init", {"grid": 3, **fields})  # order does not count
    others = [
        bc.cache_key("raw_pixels", fields),
        bc.cache_key("random_init", {**fields, "grid": 2}),
        bc.cache_key("random_init", {**fields, "layers": ["block3"]}),
        bc.cache_key("random_init", {**fields, "probe": {"l2_grid": [1e-4]}}),
    ]
    assert len({key, *others}) == 5
    with pytest.raises(ValueError, match="unknown baseline kind 'pixels'; valid: random_init"):
        bc.cache_key("pixels", fields)


def test_files_fingerprint_changes_when_a_file_is_added_or_rewritten(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"12345")
    first = bc.files_fingerprint(tmp_path)
    assert first == bc.files_fingerprint(tmp_path)
    (tmp_path / "a" / "y.bin").write_bytes(b"")
    second = bc.files_fingerprint(tmp_path)
    assert second != first
    (tmp_path / "a" / "x.bin").write_bytes(b"123456")
    assert bc.files_fingerprint(tmp_path) not in (first, second)


def test_entries_are_never_overwritten_and_bad_files_are_misses(tmp_path):
    key = bc.cache_key("raw_pixels", {"n": 1})
    assert bc.read_entry(tmp_path, "raw_pixels", key) is None
    path = bc.write_entry(tmp_path, "raw_pixels", key, {"top1": 0.5}, {"n": 1})
    assert path is not None and path.exists()
    assert bc.read_entry(tmp_path, "raw_pixels", key)["report"] == {"top1": 0.5}
    assert bc.write_entry(tmp_path, "raw_pixels", key, {"top1": 0.9}, {"n": 1}) is None
    assert bc.read_entry(tmp_path, "raw_pixels", key)["report"] == {"top1": 0.5}
    path.write_text("{not json")
    assert bc.read_entry(tmp_path, "raw_pixels", key) is None
    other = bc.cache_key("raw_pixels", {"n": 2})
    bc.entry_path(tmp_path, "raw_pixels", other).write_text(json.dumps({"key": key, "report": 1}))
    assert bc.read_entry(tmp_path, "raw_pixels", other) is None  # an entry of another key


def test_cache_dir_comes_from_the_argument_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(bc.CACHE_ENV, str(tmp_path / "env"))
    assert str(bc.cache_dir()) == str(tmp_path / "env")
    assert str(bc.cache_dir(str(tmp_path / "arg"))) == str(tmp_path / "arg")
    monkeypatch.delenv(bc.CACHE_ENV)
    assert str(bc.cache_dir()).endswith(os.path.join(".cache", "ssljax", "baselines"))


@pytest.fixture
def pretrained(tiny_pretrained_workdir, tmp_path):
    """A copy of the shared tiny run (the evaluation writes its report into the workdir)."""
    workdir = str(tmp_path / "run")
    shutil.copytree(tiny_pretrained_workdir, workdir)
    return workdir


def _baseline_numbers(report):
    return {
        kind: (report[kind]["top1"], report[kind]["knn"]["top1"], report[kind]["l2"])
        for kind in ("random_init", "raw_pixels")
    }


def test_a_second_evaluation_reads_the_baselines_a_new_layer_misses_the_encoder_only(
    pretrained, tmp_path
):
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir, format_report

    cache = str(tmp_path / "cache")
    first = evaluate_workdir(pretrained, baselines=True, cache_dir=cache)
    assert not first["random_init"].get("cached") and not first["raw_pixels"].get("cached")
    assert sorted(p.split("-")[0] for p in os.listdir(cache)) == ["random_init", "raw_pixels"]
    second = evaluate_workdir(pretrained, baselines=True, cache_dir=cache)
    assert second["random_init"]["cached"] and second["raw_pixels"]["cached"]
    assert second["random_init"]["cache_file"].startswith(cache)
    # Same machine, same code: the stored numbers are the computed ones, digit for digit.
    assert _baseline_numbers(second) == _baseline_numbers(first)
    assert second["top1"] == first["top1"]  # the pretrained probe is always computed
    table = format_report(second)
    assert "random-init encoder (pooled, cached)" in table and "raw pixels (cached)" in table
    other = evaluate_workdir(pretrained, baselines=True, layer="block2", grid=2, cache_dir=cache)
    assert not other["random_init"].get("cached") and other["random_init"]["layer"] == "block2"
    assert other["raw_pixels"]["cached"]
    assert len(os.listdir(cache)) == 3


def test_a_folder_that_cannot_be_listed_is_named_instead(tmp_path):
    # Mocked TFDS data point data_dir at a folder that does not exist.
    first = bc.files_fingerprint(str(tmp_path / "absent" / "cifar10" / "3.0.2"))
    assert first == bc.files_fingerprint(str(tmp_path / "absent" / "cifar10" / "3.0.2"))
    assert first != bc.files_fingerprint(str(tmp_path / "absent" / "cifar100" / "3.0.2"))
