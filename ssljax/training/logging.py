"""Run output people can read: a progress bar, ``metrics.jsonl`` and TensorBoard events."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def to_python(metrics: dict) -> dict:
    """Converts scalar arrays in a metrics dict to plain Python floats/bools."""
    out = {}
    for k, v in metrics.items():
        v = np.asarray(v)
        out[k] = bool(v) if v.dtype == bool else float(v)
    return out


def write_text_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file, so a crash leaves the old file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json_atomic(path: str, obj) -> None:
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` (atomically)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def set_aside_records_after(path: str, step: int) -> int:
    """Moves ``metrics.jsonl`` records logged after ``step`` to ``metrics.superseded.jsonl``.

    A run cut off between checkpoints resumes from its last checkpoint and logs those steps
    again; the first run's records of them are kept beside the log, not in it, so the log
    holds one record per step. Returns how many records were moved.
    """
    if not os.path.exists(path):
        return 0
    kept, later = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                (later if json.loads(line).get("step", 0) > step else kept).append(line)
    if not later:
        return 0
    with open(os.path.join(os.path.dirname(path), "metrics.superseded.jsonl"), "a") as f:
        f.writelines(later)
    write_text_atomic(path, "".join(kept))
    return len(later)


class MetricWriter:
    """Appends ``{'step': s, **metrics}`` lines to ``metrics.jsonl`` and writes TB scalars.

    ``start_step``: the step the run starts (or resumes) from; records of later steps from
    an earlier, cut-off run are moved to ``metrics.superseded.jsonl`` first.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True, start_step: int = 0):
        os.makedirs(workdir, exist_ok=True)
        path = os.path.join(workdir, "metrics.jsonl")
        moved = set_aside_records_after(path, start_step)
        if moved:
            print(f"moved {moved} records logged after step {start_step} by the cut-off run "
                  f"to metrics.superseded.jsonl", flush=True)
        self._jsonl = open(path, "a")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: dict) -> None:
        values = to_python(metrics)
        self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, float(v), global_step=int(step))

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


class Progress:
    """A one-line progress bar with step/s, ETA and the latest loss (stderr)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, stream=None):
        self.total, self.initial, self.step = total, initial, initial
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.is_tty = getattr(self.stream, "isatty", lambda: False)()
        self._last_print = 0.0

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return (self.step - self.initial) / elapsed if elapsed > 0 else 0.0

    def update(self, step: int, metrics: dict | None = None, force: bool = False) -> None:
        self.step = step
        now = time.perf_counter()
        # On a terminal redraw often; in logs print at most every 10 s.
        interval = 0.2 if self.is_tty else 10.0
        if not self.enabled or (not force and now - self._last_print < interval):
            return
        self._last_print = now
        rate = self.rate()
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        frac = step / max(self.total, 1)
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        loss = "" if not metrics or "loss" not in metrics else f" loss {float(metrics['loss']):.4f}"
        line = (
            f"[{bar}] {step}/{self.total} {rate:.2f} step/s "
            f"ETA {format_seconds(eta)}{loss}"
        )
        end = "\r" if self.is_tty and not force else "\n"
        print(line, end=end, file=self.stream, flush=True)


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
