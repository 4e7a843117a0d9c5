"""What several processes cost on CPU: the same run on 1 process and on N processes.

  python experiments/benchmark_multihost.py [--config configs/simclr.py:fashion_mnist]
      [--devices 2] [--steps 40] [--out results.json]

Runs ``python -m ssljax.train`` twice with the same global batch and device count: once as
one process with ``--devices`` host devices, once as ``--devices`` processes with one device
each (jax.distributed over 127.0.0.1, gloo collectives). The step time is read from the
run's own ``metrics.jsonl`` (``steps_per_second`` is the mean rate since the start of the
loop): ``(t / rate_t - t0 / rate_t0) / (t - t0)`` between the first logged step ``t0`` and the
last one ``t``, so compilation and the first step are left out. Prints one JSON line per
layout and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steady_step_seconds(metrics_path: str) -> float:
    """Seconds per step between the first and last logged records (compilation excluded)."""
    with open(metrics_path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    first, last = records[0], records[-1]
    elapsed = last["step"] / last["steps_per_second"] - first["step"] / first["steps_per_second"]
    return elapsed / (last["step"] - first["step"])


def run_layout(
    config: str,
    workdir: str,
    *,
    processes: int,
    devices: int,
    steps: int,
    log_every: int,
    extra: list[str],
) -> float:
    """Trains ``steps`` steps as ``processes`` x ``devices``; returns seconds per step."""
    env = dict(
        os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", PYTHONPATH=ROOT
    )
    port = free_port()
    procs = []
    for pid in range(processes):
        dist = (
            []
            if processes == 1
            else [
                f"--coordinator_address=127.0.0.1:{port}",
                f"--num_processes={processes}",
                f"--process_id={pid}",
            ]
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ssljax.train",
                    f"--config={config}",
                    f"--workdir={workdir}",
                    "--quiet",
                    f"--config.total_steps={steps}",
                    f"--config.log_every_steps={log_every}",
                    f"--config.checkpoint_every_steps={10 * steps}",
                    *extra,
                    *dist,
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        out, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"error: {processes}-process run failed: {err.strip()[-500:]}")
    return steady_step_seconds(os.path.join(workdir, "metrics.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "configs/simclr.py:fashion_mnist"))
    parser.add_argument("--devices", type=int, default=2, help="devices in all (= processes)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("overrides", nargs="*", help="extra --config.KEY=VALUE flags")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for processes, devices in ((1, args.devices), (args.devices, 1)):
            name = f"{processes}x{devices}"
            seconds = run_layout(
                args.config,
                os.path.join(tmp, name),
                processes=processes,
                devices=devices,
                steps=args.steps,
                log_every=args.log_every,
                extra=args.overrides,
            )
            results[name] = dict(
                processes=processes, devices_per_process=devices, step_seconds=seconds
            )
            print(json.dumps(dict(layout=name, **results[name])), flush=True)
    one, many = results[f"1x{args.devices}"], results[f"{args.devices}x1"]
    ratio = many["step_seconds"] / one["step_seconds"]
    print(json.dumps(dict(multi_process_over_single=ratio)), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(results, ratio=ratio), f, indent=2)


if __name__ == "__main__":
    main()
