"""Every identifiability study at a CPU-sized setting (or the papers' with ``--full``): our
tables beside the numbers the papers report, a JSON record and the figures.

  python experiments/identifiability.py --out_dir runs/identifiability
  python experiments/identifiability.py --studies linear,tcl --out_dir runs/id_quick
  python experiments/identifiability.py --full --out_dir runs/identifiability_full  # hours

Studies (``ssljax.identifiability``; explained in docs/identifiability.md):

* ``linear``: maximum-likelihood linear ICA on Laplace and Gaussian sources beside
  scikit-learn's FastICA (Amari distance), and PPCA's rotation (Tipping & Bishop 1999);
* ``rotation``: a dSprites VAE under rotations of its latent space: same ELBO, other
  disentanglement scores (Locatello et al. 2019, Theorem 1);
* ``tcl``: time-contrastive learning, MCC against segments and mixing depth (Hyvarinen &
  Morioka 2016);
* ``ivae``: iVAE against a plain VAE on segment-conditional sources (Khemakhem et al. 2020);
* ``zimmermann``: InfoNCE inverts an invertible MLP on the sphere (Zimmermann et al. 2021);
* ``content_style``: InfoNCE and AlignMaxEnt recover content, not style (von Kugelgen et al.
  2021), for independent, statistically and causally dependent latents.

Writes ``OUT/identifiability.json``, ``OUT/identifiability.md`` and the figures
``OUT/tcl.png`` and ``OUT/content_style.png``; files already there stop the run before any
work unless ``--overwrite``. The rotation study trains a small VAE in ``OUT/rotation_vae``
(or reads the checkpoint of ``--rotation_workdir``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

STUDIES = ("linear", "rotation", "tcl", "ivae", "zimmermann", "content_style")
CONTENT_STYLE_RUNS = (
    ("independent", "infonce"),
    ("statistical", "infonce"),
    ("causal", "infonce"),
    ("independent", "alignmaxent"),
)
OUTPUTS = ("identifiability.json", "identifiability.md", "tcl.png", "content_style.png")


def parse_studies(text: str) -> tuple[str, ...]:
    """``'linear,tcl'`` -> ``('linear', 'tcl')``; ``'all'`` -> every study."""
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if names == ("all",):
        return STUDIES
    unknown = [n for n in names if n not in STUDIES]
    if unknown or not names:
        raise ValueError(f"unknown study {unknown or text!r}; choose from {', '.join(STUDIES)}")
    return names


def to_json(x: Any) -> Any:
    """NumPy / JAX scalars and arrays -> plain JSON values (recursively)."""
    if isinstance(x, Mapping):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    if hasattr(x, "shape") and hasattr(x, "tolist"):
        return np.asarray(x).tolist()
    return x


def _f(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (tuple, list)):
        return "-".join(_f(v, digits) for v in x)
    return f"{float(x):.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (first column left-aligned, the others right-aligned)."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# One formatter per study: its Markdown section (our numbers beside the paper's).


def format_linear(r: Mapping) -> str:
    rows = []
    for kind in ("laplace", "gaussian"):
        k = r[kind]
        rows.append(
            [
                f"{kind} sources",
                _f(k["amari"]),
                _f(k["amari_fastica"]),
                _f(k["log_likelihood"], 4),
                _f(k["log_likelihood_rotated"], 4),
                _f(k["gaussian_model_log_likelihood"], 4),
                _f(k["gaussian_model_log_likelihood_rotated"], 4),
            ]
        )
    p = r["ppca"]
    out = [
        f"### Linear ICA ({r['n']} samples, {r['dim']} sources)",
        "",
        table(
            (
                "data",
                "Amari (ours)",
                "Amari (FastICA)",
                "log-lik at W",
                "at R W",
                "Gaussian-model log-lik at W",
                "at R W",
            ),
            rows,
        ),
        "",
        "Target: Amari distance below 0.05 on Laplace sources; far from 0 on Gaussian ones.",
        f"PPCA ({p['n_components']} components) on the Gaussian data: a random rotation R "
        f"changes W by {_f(p['W_relative_change'], 2)} of its norm and the log-likelihood "
        f"({_f(p['log_likelihood'], 4)}) by {p['log_likelihood_difference']:.1e}.",
    ]
    return "\n".join(out)


def format_rotation(r: Mapping) -> str:
    from ssljax.identifiability.rotation import format_rotation_table

    return "\n".join(
        [
            f"### Rotating a dSprites VAE's latent space (latent dim {r['latent_dim']})",
            "",
            format_rotation_table(r["rows"]),
            "",
            "Same ELBO and log p(x) (to float error) under every rotation; the scores move. "
            "The 'factors' rows rotate the ground-truth factors themselves.",
        ]
    )


def format_tcl(rows: Sequence[Mapping], paper: Mapping) -> str:
    body = [
        [
            r["depth"],
            r["n_segments"],
            _f(r["mcc"]),
            _f(r["mcc_ica"]),
            _f(r["mcc_untrained_ica"]),
            _f(r["final_loss"]),
            _f(r["chance_loss"]),
        ]
        for r in rows
    ]
    return "\n".join(
        [
            "### Time-contrastive learning",
            "",
            table(
                (
                    "mixing depth",
                    "segments",
                    "MCC",
                    "MCC after FastICA",
                    "untrained, after FastICA",
                    "final loss",
                    "chance loss",
                ),
                body,
            ),
            "",
            f"Paper: {paper['note']} ({paper['source']}).",
        ]
    )


def format_ivae(r: Mapping) -> str:
    labels = {"ivae": "iVAE", "vae": "VAE", "ivae_elbo": "iVAE, plain ELBO"}
    rows = [
        [
            labels[name],
            "ELBO" if r[name]["weights"] is None else str(tuple(r[name]["weights"])),
            _f(r[name]["mcc"]),
            ", ".join(_f(v, 2) for v in r[name].get("mcc_per_seed", [])),
            _f(r[name]["mcc_untrained"]),
            _f(r[name]["final_loss"], 2),
        ]
        for name in labels
        if name in r
    ]
    paper = r["paper"]
    wins = r.get("ivae_above_vae", [])
    header = ("model", "weights (a, b, c, d)", "median MCC", "per seed", "untrained", "loss")
    return "\n".join(
        [
            f"### iVAE against a VAE ({r['setting']})",
            "",
            table(header, rows),
            "",
            f"iVAE above the VAE in {sum(wins)} of {len(wins)} seeds.",
            f"Paper: iVAE about {paper['ivae_mcc_approx']}, VAE about "
            f"{_f(paper['vae_mcc_approx'], 1)} ({paper['note']}).",
        ]
    )


def _scalar_items(r: Mapping) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def format_zimmermann(r: Mapping) -> str:
    rows = [[k, _f(v) if isinstance(v, float) else v] for k, v in _scalar_items(r)]
    paper = r.get("paper", {})
    return "\n".join(
        [
            "### Contrastive learning inverts the generating process",
            "",
            table(("quantity", "value"), rows),
            "",
            f"Paper: {paper}. Target: MCC of at least 0.95 on the sphere.",
        ]
    )


def format_content_style(rows: Sequence[Mapping]) -> str:
    keys = (
        "content_r2_linear",
        "content_r2_nonlinear",
        "style_r2_linear",
        "style_r2_nonlinear",
        "style_baseline_r2_nonlinear",
    )
    body = [[r["variant"], r["objective"]] + [_f(r.get(k)) for k in keys] for r in rows]
    papers = {r["variant"]: r.get("paper") for r in rows if r.get("paper")}
    return "\n".join(
        [
            "### Content and style",
            "",
            table(
                (
                    "latents",
                    "objective",
                    "content R2 lin",
                    "content R2 nonlin",
                    "style R2 lin",
                    "style R2 nonlin",
                    "style from true content (baseline)",
                ),
                body,
            ),
            "",
            f"Paper: {papers}. Target: content nonlinear R2 >= 0.9 with InfoNCE; style near the "
            "baseline.",
        ]
    )


# ---------------------------------------------------------------------------------------------
# Running.


def run_studies(
    studies: Sequence[str],
    *,
    out_dir: str,
    full: bool = False,
    seed: int = 0,
    rotation_workdir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Runs ``studies``; returns ``{study: result}`` (JSON-ready) with ``sections`` (Markdown)
    and the figure paths."""
    import jax

    results: dict[str, Any] = {}
    sections: list[str] = []
    for name in studies:
        start = time.perf_counter()
        log(f"[identifiability] {name} ({'full' if full else 'CPU-sized'}) ...")
        if name == "linear":
            from ssljax.identifiability.linear import linear_ica_study

            r = linear_ica_study(jax.random.PRNGKey(seed))
            sections.append(format_linear(r))
        elif name == "rotation":
            from ssljax.identifiability.rotation import cpu_rotation_study

            workdir = rotation_workdir or os.path.join(out_dir, "rotation_vae")
            kwargs = {} if not full else {"n_rotations": 10, "num_images": 512}
            r = cpu_rotation_study(workdir, steps=3000 if full else 300, seed=seed, **kwargs)
            sections.append(format_rotation(r))
        elif name == "tcl":
            from ssljax.identifiability import nonlinear_ica as nl

            rows = nl.tcl_study(seed=seed, full=full)
            figure = nl.plot_tcl(rows, os.path.join(out_dir, "tcl.png"), overwrite=True)
            r = {"rows": rows, "paper": nl.TCL_PAPER, "figure": str(figure)}
            sections.append(format_tcl(rows, nl.TCL_PAPER))
        elif name == "ivae":
            from ssljax.identifiability.nonlinear_ica import ivae_study

            r = ivae_study(seed=seed, full=full)
            sections.append(format_ivae(r))
        elif name == "zimmermann":
            from ssljax.identifiability.contrastive import zimmermann_study

            r = zimmermann_study(seed=seed, full=full)
            sections.append(format_zimmermann(r))
        elif name == "content_style":
            from ssljax.identifiability import contrastive as cl

            rows = [
                cl.content_style_study(variant=v, objective=o, seed=seed, full=full)
                for v, o in CONTENT_STYLE_RUNS
            ]
            figure = cl.plot_content_style(
                rows, os.path.join(out_dir, "content_style.png"), overwrite=True
            )
            r = {"rows": rows, "figure": str(figure)}
            sections.append(format_content_style(rows))
        else:  # parse_studies checked the names
            raise ValueError(f"unknown study {name!r}; choose from {', '.join(STUDIES)}")
        r = to_json(r)
        r["study_seconds"] = time.perf_counter() - start
        results[name] = r
        log(sections[-1])
        log(f"[identifiability] {name} done in {r['study_seconds']:.0f} s")
    results["sections"] = sections
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", default="all", help=f"comma list of {', '.join(STUDIES)}")
    parser.add_argument("--out_dir", default="runs/identifiability")
    parser.add_argument("--full", action="store_true", help="the papers' settings (hours)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rotation_workdir", default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        studies = parse_studies(args.studies)
    except ValueError as err:
        parser.error(str(err))
    existing = [f for f in OUTPUTS if os.path.exists(os.path.join(args.out_dir, f))]
    if existing and not args.overwrite:
        parser.error(f"{args.out_dir} already holds {existing}; pass --overwrite or another dir")
    os.makedirs(args.out_dir, exist_ok=True)
    setting = "the papers' settings" if args.full else "CPU-sized settings"
    results: dict = {}
    sections: list[str] = []
    for study in studies:  # the record is rewritten after each study: a failure keeps the rest
        done = run_studies(
            [study],
            out_dir=args.out_dir,
            full=args.full,
            seed=args.seed,
            rotation_workdir=args.rotation_workdir,
        )
        sections += done.pop("sections")
        results.update(done)
        markdown = f"# Identifiability studies ({setting}, seed {args.seed})\n\n" + "\n\n".join(
            sections
        )
        with open(os.path.join(args.out_dir, "identifiability.md"), "w") as f:
            f.write(markdown + "\n")
        with open(os.path.join(args.out_dir, "identifiability.json"), "w") as f:
            json.dump(results, f, indent=1)
    print(f"wrote {args.out_dir}/identifiability.md and .json", flush=True)
    return 0
