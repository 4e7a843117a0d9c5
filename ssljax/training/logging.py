"""Run output people can read: a progress bar, ``metrics.jsonl`` and TensorBoard events.

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


class MetricWriter:
    """Appends ``{'step': s, **metrics}`` lines to ``metrics.jsonl`` and writes TB scalars.

    ``start_step``: the step the run starts (or resumes) from; records of later steps from
    an earlier, cut-off run are moved to ``metrics.superseded.jsonl`` first.

    On an object store the log is uploaded again whole at every write (objects cannot be
    appended to), and so is the TensorBoard event file, so a killed run loses no record.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True, start_step: int = 0):
        wio.ensure_dir(workdir)
        self._remote = wio.is_remote(workdir)
        self._path = wio.join(workdir, METRICS_FILE)
        moved = set_aside_records_after(self._path, start_step)
        if moved:
            print(
                f"moved {moved} records logged after step {start_step} by the cut-off run "
                f"to {SUPERSEDED_FILE}",
                flush=True,
            )
        if self._remote:
            self._text = wio.read_text(self._path) or ""
            self._jsonl = None
        else:
            self._jsonl = open(self._path, "a")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            if self._remote:
                route_tensorboard_through_epath(wio.scheme_of(workdir))
            self._tb = SummaryWriter(wio.join(workdir, TENSORBOARD_SUBDIR))

    def write(self, step: int, metrics: dict) -> None:
        values = to_python(metrics)
        line = json.dumps({"step": int(step), **values}) + "\n"
        if self._remote:
            self._text += line
            write_text_atomic(self._path, self._text)
        else:
            self._jsonl.write(line)
            self._jsonl.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, float(v), global_step=int(step))
            if self._remote:
                self._tb.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


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
        """``[####------] 40/100 2.50 step/s ETA 0:24 loss 1.2345``."""
        rate = self.rate()
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        frac = min(max(step / max(self.total, 1), 0.0), 1.0)
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        loss = "" if not metrics or "loss" not in metrics else f" loss {float(metrics['loss']):.4f}"
        return f"[{bar}] {step}/{self.total} {rate:.2f} step/s ETA {format_seconds(eta)}{loss}"


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
