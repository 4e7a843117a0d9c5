"""Run output people can read: a progress bar, ``metrics.jsonl`` and TensorBoard events.

The metric files are written by writers of clu's ``metric_writers.MetricWriter`` interface
(ours where clu has none that fits), so a run's writer can be composed with any of clu's.

Every file goes through ``ssljax.io`` (``etils.epath``), so a workdir may be a local path or
an object-store URI such as ``gs://bucket/run``.
"""

from __future__ import annotations

import io as _io
import json
import sys
import time

import numpy as np

from ssljax import io as wio

METRICS_FILE = "metrics.jsonl"
SUPERSEDED_FILE = "metrics.superseded.jsonl"
TENSORBOARD_SUBDIR = "tensorboard"


def to_python(metrics: dict) -> dict:
    """Converts scalar arrays in a metrics dict to plain Python floats/bools."""
    out = {}
    for k, v in metrics.items():
        v = np.asarray(v)
        out[k] = bool(v) if v.dtype == bool else float(v)
    return out


def write_text_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` (local or URI) so a crash leaves the old or the new file."""
    wio.write_text_atomic(path, text)


def write_json_atomic(path: str, obj) -> None:
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` (atomically)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def split_records_after(text: str, step: int) -> tuple[str, str]:
    """``(kept, later)``: the JSON lines of ``text`` with ``step <= step`` and the others."""
    kept, later = [], []
    for line in text.splitlines(keepends=True):
        if line.strip():
            line = line if line.endswith("\n") else line + "\n"
            (later if json.loads(line).get("step", 0) > step else kept).append(line)
    return "".join(kept), "".join(later)


def set_aside_records_after(path: str, step: int) -> int:
    """Moves ``metrics.jsonl`` records logged after ``step`` to ``metrics.superseded.jsonl``.

    A run cut off between checkpoints resumes from its last checkpoint and logs those steps
    again; the first run's records of them are kept beside the log, not in it, so the log
    holds one record per step. Returns how many records were moved.
    """
    text = wio.read_text(path)
    if text is None:
        return 0
    kept, later = split_records_after(text, step)
    if not later:
        return 0
    aside = wio.join(wio.as_path(path).parent, SUPERSEDED_FILE)
    # A run killed between these two writes moves the same records again next time.
    if not (wio.read_text(aside) or "").endswith(later):
        wio.append_text(aside, later)
    write_text_atomic(path, kept)
    return later.count("\n")


class _BufferedRecordFile:
    """A TensorBoard event file on an object store: records gather in memory and every
    flush uploads the whole file (objects cannot be appended to)."""

    def __init__(self, path: str):
        self.path = path
        self._buffer = _io.BytesIO()
        self._uploaded = -1

    def write(self, data: bytes) -> None:
        self._buffer.write(data)

    def flush(self) -> None:
        size = self._buffer.tell()
        if size != self._uploaded:
            wio.as_path(self.path).write_bytes(self._buffer.getvalue())
            self._uploaded = size

    def close(self) -> None:
        self.flush()


class _BufferedRecordFactory:
    """tensorboardX's hook for a URI scheme: event files go through ``etils.epath``."""

    def open(self, path: str) -> _BufferedRecordFile:
        return _BufferedRecordFile(path)

    def directory_check(self, path: str) -> None:
        del path  # object stores have no directories to create


def route_tensorboard_through_epath(scheme: str) -> None:
    """Makes tensorboardX write ``scheme://`` event files through ``etils.epath`` (its
    built-in gs:// writer needs google-cloud-storage and ignores emulators)."""
    from tensorboardX import record_writer

    record_writer.register_writer_factory(scheme, _BufferedRecordFactory())


def _warn_once(message: str) -> None:
    from absl import logging as absl_logging

    absl_logging.log_first_n(absl_logging.WARNING, message, 1)


class JsonlWriter:
    """clu ``MetricWriter`` of ``metrics.jsonl``: one ``{'step': s, **scalars}`` line per
    ``write_scalars`` call (values as plain floats/bools, :func:`to_python`).

    ``start_step``: the step the run starts (or resumes) from; records of later steps from
    an earlier, cut-off run are moved to ``metrics.superseded.jsonl`` first
    (:func:`set_aside_records_after`). A local log is appended to and flushed line by line;
    on an object store (no appends) the whole log is uploaded again at every write, so a
    killed run loses no record. The log holds scalars only: the other kinds of values are
    left to the other writers (TensorBoard).
    """

    def __init__(self, path: str, *, start_step: int = 0):
        self._path = path
        self._remote = wio.is_remote(path)
        moved = set_aside_records_after(path, start_step)
        if moved:
            print(
                f"moved {moved} records logged after step {start_step} by the cut-off run "
                f"to {SUPERSEDED_FILE}",
                flush=True,
            )
        if self._remote:
            self._text = wio.read_text(path) or ""
            self._file = None
        else:
            self._file = open(path, "a")

    def write_scalars(self, step: int, scalars) -> None:
        line = json.dumps({"step": int(step), **to_python(scalars)}) + "\n"
        if self._remote:
            self._text += line
            write_text_atomic(self._path, self._text)
        else:
            self._file.write(line)
            self._file.flush()

    def write_summaries(self, step, values, metadata=None) -> None:
        del step, values, metadata  # scalars only

    def write_images(self, step, images) -> None:
        del step, images

    def write_videos(self, step, videos) -> None:
        del step, videos

    def write_audios(self, step, audios, *, sample_rate) -> None:
        del step, audios, sample_rate

    def write_texts(self, step, texts) -> None:
        del step, texts

    def write_histograms(self, step, arrays, num_buckets=None) -> None:
        del step, arrays, num_buckets

    def write_hparams(self, hparams) -> None:
        del hparams  # the run's config is config.json

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorboardXWriter:
    """clu ``MetricWriter`` of TensorBoard event files through tensorboardX (after clu's
    ``TorchTensorboardWriter``, whose ``SummaryWriter`` API tensorboardX shares).

    clu's own ``SummaryWriter`` writes through TensorFlow's file system, whose gs:// client
    cannot be pointed at a GCS emulator (so the object-store path could not be tested) and
    appends to objects, which object stores do not do; here a ``scheme://`` logdir is written
    through ``etils.epath`` (:func:`route_tensorboard_through_epath`) and the event file is
    uploaded again whole at every write. Scalars, images, texts and histograms are written;
    raw summaries, videos, audios and hyperparameters are not (a warning, once).
    """

    def __init__(self, logdir: str):
        from tensorboardX import SummaryWriter

        self._remote = wio.is_remote(logdir)
        if self._remote:
            route_tensorboard_through_epath(wio.scheme_of(logdir))
        self._tb = SummaryWriter(logdir)

    def _written(self) -> None:
        if self._remote:
            self._tb.flush()

    def write_scalars(self, step: int, scalars) -> None:
        for key, value in to_python(scalars).items():
            self._tb.add_scalar(key, float(value), global_step=int(step))
        self._written()

    def write_images(self, step: int, images) -> None:
        for key, value in images.items():
            value = np.asarray(value)
            if value.ndim == 4:
                self._tb.add_images(key, value, global_step=int(step), dataformats="NHWC")
            else:
                self._tb.add_image(key, value, global_step=int(step), dataformats="HWC")
        self._written()

    def write_texts(self, step: int, texts) -> None:
        for key, value in texts.items():
            self._tb.add_text(key, str(value), global_step=int(step))
        self._written()

    def write_histograms(self, step: int, arrays, num_buckets=None) -> None:
        for key, value in arrays.items():
            bins = None if num_buckets is None else num_buckets.get(key)
            self._tb.add_histogram(
                key, np.asarray(value), global_step=int(step), bins="auto", max_bins=bins
            )
        self._written()

    def write_summaries(self, step, values, metadata=None) -> None:
        del step, values, metadata
        _warn_once("TensorboardXWriter does not write raw summaries")

    def write_videos(self, step, videos) -> None:
        del step, videos
        _warn_once("TensorboardXWriter does not write videos")

    def write_audios(self, step, audios, *, sample_rate) -> None:
        del step, audios, sample_rate
        _warn_once("TensorboardXWriter does not write audios")

    def write_hparams(self, hparams) -> None:
        del hparams
        _warn_once("TensorboardXWriter does not write hyperparameters (see config.json)")

    def flush(self) -> None:
        self._tb.flush()

    def close(self) -> None:
        self._tb.flush()
        self._tb.close()


def clu_writer_interface():
    """``clu.metric_writers.MetricWriter``, with :class:`JsonlWriter` and
    :class:`TensorboardXWriter` registered as implementations of it.

    clu's package imports TensorFlow (its ``SummaryWriter``), so it is imported here, when
    a run builds its writers, and not when this module is imported.
    """
    from clu import metric_writers

    for cls in (JsonlWriter, TensorboardXWriter):
        if not issubclass(cls, metric_writers.MetricWriter):
            metric_writers.MetricWriter.register(cls)
    return metric_writers.MetricWriter


class MetricWriter:
    """A run's metrics: ``metrics.jsonl`` (:class:`JsonlWriter`) and TensorBoard scalars in
    ``tensorboard/`` (:class:`TensorboardXWriter`), and any ``extra`` clu writers (e.g.
    ``clu.metric_writers.LoggingWriter()``), all behind one ``clu.metric_writers.MultiWriter``
    (``self.writer``, which takes every kind of value clu's interface has).

    ``start_step``: the step the run starts (or resumes) from; records of later steps from
    an earlier, cut-off run are moved to ``metrics.superseded.jsonl`` first.

    On an object store the log is uploaded again whole at every write (objects cannot be
    appended to), and so is the TensorBoard event file, so a killed run loses no record.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True, start_step: int = 0, extra=()):
        from clu import metric_writers

        clu_writer_interface()
        wio.ensure_dir(workdir)
        writers = [JsonlWriter(wio.join(workdir, METRICS_FILE), start_step=start_step)]
        if tensorboard:
            writers.append(TensorboardXWriter(wio.join(workdir, TENSORBOARD_SUBDIR)))
        self.writer = metric_writers.MultiWriter([*writers, *extra])

    def write(self, step: int, metrics: dict) -> None:
        """Writes the scalars ``metrics`` of ``step`` to every writer."""
        self.writer.write_scalars(int(step), metrics)

    def close(self) -> None:
        self.writer.close()


class Progress:
    """A progress line with step/s, ETA and the latest loss (stderr).

    On a terminal the line is redrawn in place (at most every 0.2 s). In a log file (the
    stream is not a TTY) it prints one line every ``every`` steps and at the end, so logs
    grow with the run's length, not its duration; ``every=None`` means a tenth of the run.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        enabled: bool = True,
        stream=None,
        every: int | None = None,
    ):
        if every is not None and int(every) < 1:
            raise ValueError(f"Progress every={every} must be a positive number of steps")
        self.total, self.initial, self.step = total, initial, initial
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.every = int(every) if every is not None else max(1, int(total) // 10)
        self.start = time.perf_counter()
        self.is_tty = getattr(self.stream, "isatty", lambda: False)()
        self._last_print = 0.0
        self._last_step = initial

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return (self.step - self.initial) / elapsed if elapsed > 0 else 0.0

    def due(self, step: int, force: bool) -> bool:
        """Whether ``update(step)`` draws: always when forced; on a TTY at most every 0.2 s;
        in a log when ``step`` reaches a multiple of ``every``."""
        if force:
            return True
        if self.is_tty:
            return time.perf_counter() - self._last_print >= 0.2
        return step // self.every > self._last_step // self.every

    def update(self, step: int, metrics: dict | None = None, force: bool = False) -> None:
        self.step = step
        due = self.enabled and self.due(step, force)
        self._last_step = step
        if not due:
            return
        self._last_print = time.perf_counter()
        print(
            self.line(step, metrics),
            end="\r" if self.is_tty and not force else "\n",
            file=self.stream,
            flush=True,
        )

    def line(self, step: int, metrics: dict | None = None) -> str:
        """``[####------] 40/100 2.50 step/s ETA 0:24 loss 1.2345 knn 0.8123`` (the loss and
        the kNN monitor's top-1 when ``metrics`` has ``loss`` / ``knn_top1``)."""
        rate = self.rate()
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        frac = min(max(step / max(self.total, 1), 0.0), 1.0)
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        shown = ""
        for key, name in (("loss", "loss"), ("knn_top1", "knn")):
            if metrics and key in metrics:
                shown += f" {name} {float(metrics[key]):.4f}"
        return f"[{bar}] {step}/{self.total} {rate:.2f} step/s ETA {format_seconds(eta)}{shown}"


def format_seconds(seconds: float) -> str:
    """``3725 -> '1:02:05'``; NaN -> '?'."""
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` restricted to ``columns`` (floats with 4 digits)."""

    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)
