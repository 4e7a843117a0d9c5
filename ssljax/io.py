"""Workdir files on any filesystem: local paths and object-store URIs alike.

Every file a run or an evaluation reads or writes under its workdir goes through
``etils.epath``, the path library Orbax uses, so ``--workdir gs://bucket/run`` works the
same as ``--workdir runs/demo``. An object store has no directories, no appends and no
renames; the helpers here say how each operation is done there (a whole-object upload is
atomic, so it stands in for write-then-rename).

A URI with a scheme epath would not recognise (``s3a://b/run``) or one the checkpoints
cannot use is refused with a one-line ValueError instead of silently becoming a local
directory named ``s3a:``.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from typing import Any, Callable

from etils import epath

# Schemes a workdir may use besides local paths: Orbax's array storage (TensorStore) has a
# native driver for gs:// only.
REMOTE_SCHEMES = ("gs",)
# How long a workdir may take to answer the start-up probe before the run gives up.
WORKDIR_TIMEOUT_S = 30.0

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def scheme_of(path) -> str | None:
    """``'gs'`` for ``'gs://b/x'``; None for a local path."""
    match = _SCHEME.match(os.fspath(path))
    return match.group(1).lower() if match else None


def is_remote(path) -> bool:
    """Whether ``path`` is an object-store URI (anything with a ``scheme://``)."""
    return scheme_of(path) is not None


def check_scheme(path) -> None:
    """Refuses a URI whose scheme is not one of ``REMOTE_SCHEMES`` (one-line ValueError)."""
    scheme = scheme_of(path)
    if scheme is not None and scheme not in REMOTE_SCHEMES:
        valid = ", ".join(f"{s}://" for s in REMOTE_SCHEMES)
        raise ValueError(
            f"workdir {os.fspath(path)}: scheme {scheme}:// is not supported; "
            f"use a local path or one of {valid}"
        )


def as_path(path) -> epath.Path:
    """An ``epath.Path`` for a local path or a supported URI (others: ValueError)."""
    check_scheme(path)
    return epath.Path(path)


def join(base, *parts: str) -> str:
    """``base/part/...`` as a string, keeping a URI's ``scheme://``."""
    return os.fspath(as_path(base).joinpath(*parts))


def absolute(path) -> str:
    """A local path made absolute; a URI unchanged (Orbax needs absolute local paths)."""
    return os.fspath(path) if is_remote(path) else os.path.abspath(os.fspath(path))


def ensure_dir(path) -> None:
    """Creates a local directory (and parents). On an object store, directories exist
    implicitly, and creating one could create a missing bucket, so nothing is done."""
    if not is_remote(path):
        os.makedirs(os.fspath(path), exist_ok=True)


def read_text(path) -> str | None:
    """The text of ``path``, or None when it does not exist."""
    p = as_path(path)
    return p.read_text() if p.exists() else None


def write_text_atomic(path, text: str) -> None:
    """Writes ``text`` to ``path`` so that a reader sees the old or the new file, never a
    part: locally through a temporary file and ``os.replace``; on an object store by one
    upload, which only becomes visible once complete."""
    if is_remote(path):
        as_path(path).write_text(text)
        return
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_text(path, text: str) -> None:
    """Appends ``text`` to ``path`` (created if missing). Object stores cannot append, so
    there the object is read and uploaded again whole."""
    if is_remote(path):
        write_text_atomic(path, (read_text(path) or "") + text)
        return
    with open(os.fspath(path), "a") as f:
        f.write(text)


def list_files(root) -> list[epath.Path]:
    """Every file under the directory ``root``, recursively (no directories)."""
    files = []
    for child in as_path(root).iterdir():
        if child.is_dir():
            files += list_files(child)
        else:
            files.append(child)
    return files


def move_tree(src, dst) -> None:
    """Moves the directory ``src`` to ``dst`` (which must not exist); never deletes data
    that was not copied. Locally a rename; on an object store every file is copied first
    and ``src`` is removed only after all copies succeeded."""
    if not is_remote(src):
        os.makedirs(os.path.dirname(os.fspath(dst)), exist_ok=True)
        os.rename(os.fspath(src), os.fspath(dst))
        return
    src_path, dst_path = as_path(src), as_path(dst)
    prefix = os.fspath(src_path).rstrip("/") + "/"
    for f in list_files(src_path):
        f.copy(dst_path / os.fspath(f)[len(prefix) :])
    src_path.rmtree()


# TensorStore ends an OS failure with e.g. ``Failed to write 4212 bytes to file 14: File too
# large [os_error_code='27']``; that reason is what a reader needs first.
_OS_ERROR = re.compile(r"([^:\"\[\]]+?)\s*\[os_error_code='?(\d+)'?\]")


# TensorStore appends the JSON spec of what it opened: long, and no help to a reader.
_TENSORSTORE_SPEC = re.compile(r"\s*\[tensorstore_spec(\[\d+\])?=.*$")


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name if none), led by
    the operating system's reason when TensorStore names one, without TensorStore's spec
    dump, cut to ``limit`` characters."""
    for line in str(err).splitlines():
        if line.strip():
            line = _TENSORSTORE_SPEC.sub("", " ".join(line.split()))
            match = _OS_ERROR.search(line)
            if match:
                line = f"{match.group(1).strip()} (errno {match.group(2)}): {line}"
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return type(err).__name__


class WorkdirTimeout(TimeoutError):
    """A workdir operation got no answer within its time limit."""


def call_with_timeout(fn: Callable[[], Any], timeout_s: float) -> Any:
    """Runs ``fn()`` in a daemon thread and returns its result, or raises what it raised.

    Raises ``WorkdirTimeout`` when it has not finished after ``timeout_s`` seconds; the
    thread is then abandoned (it cannot be stopped), and it does not keep the process alive.
    """
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name="ssljax-workdir-io", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise WorkdirTimeout(f"no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _probe_writable(workdir: str) -> None:
    """Creates ``workdir`` (locally) and writes, reads and deletes a small marker in it."""
    ensure_dir(workdir)
    marker = as_path(workdir) / f".ssljax-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    marker.write_text("ssljax")
    if marker.read_text() != "ssljax":
        raise OSError(f"{marker} did not read back what was written")
    marker.unlink()


def check_workdir_writable(workdir: str, timeout_s: float = WORKDIR_TIMEOUT_S) -> None:
    """Fails fast, with one line, when ``workdir`` cannot be reached or written.

    Creates the workdir if it is local, then writes, reads back and deletes a marker file,
    all within ``timeout_s`` seconds (a missing bucket, a permission error, an unreachable
    store or a hung mount are caught here, before a run builds anything).

    Raises:
      ValueError: naming the workdir, with the reason or the time limit.
    """
    check_scheme(workdir)
    try:
        call_with_timeout(lambda: _probe_writable(workdir), timeout_s)
    except WorkdirTimeout:
        raise ValueError(
            f"workdir {workdir} cannot be reached: no answer within {timeout_s:g} s"
        ) from None
    except Exception as err:
        raise ValueError(
            f"workdir {workdir} cannot be written: {describe_probe_error(workdir, err)}"
        ) from err


def describe_probe_error(workdir: str, err: BaseException) -> str:
    """The reason a probe failed, in one line: the error's type and first line, and for a
    URI that was not found, the bucket to check (a missing bucket is never created)."""
    reason = first_line(err)
    if type(err).__name__ not in reason:
        reason = f"{type(err).__name__}: {reason}"
    if is_remote(workdir) and isinstance(err, FileNotFoundError):
        bucket = os.fspath(workdir).split("://", 1)[1].split("/", 1)[0]
        reason = f"bucket {scheme_of(workdir)}://{bucket} not found or path missing ({reason})"
    return reason
