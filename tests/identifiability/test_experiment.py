"""The identifiability experiment's driver: study selection, tables, no overwriting."""

import json

import numpy as np
import pytest

from ssljax.experiments import identifiability as exp


def test_parse_studies():
    assert exp.parse_studies("all") == exp.STUDIES
    assert exp.parse_studies("tcl, linear") == ("tcl", "linear")
    with pytest.raises(ValueError, match=r"unknown study \['pca'\]; choose from linear"):
        exp.parse_studies("linear,pca")


def test_to_json_turns_numpy_into_plain_values():
    out = exp.to_json({"a": np.float32(0.5), "b": np.arange(3), "c": (np.int64(2), "x")})
    assert json.loads(json.dumps(out)) == {"a": 0.5, "b": [0, 1, 2], "c": [2, "x"]}


def test_linear_section_shows_each_number_once_in_its_column():
    kind = lambda a: dict(  # noqa: E731
        amari=a,
        amari_fastica=a + 0.001,
        log_likelihood=-6.0,
        log_likelihood_rotated=-6.5,
        gaussian_model_log_likelihood=-7.0,
        gaussian_model_log_likelihood_rotated=-7.0,
    )
    r = {
        "n": 100,
        "dim": 3,
        "laplace": kind(0.004),
        "gaussian": kind(0.4),
        "ppca": dict(
            n_components=2,
            W_relative_change=1.2,
            log_likelihood=-4.0,
            log_likelihood_difference=1e-15,
        ),
    }
    text = exp.format_linear(r)
    rows = [line for line in text.splitlines() if line.startswith("| laplace")]
    assert rows == ["| laplace sources | 0.004 | 0.005 | -6.0000 | -6.5000 | -7.0000 | -7.0000 |"]
    assert "changes W by 1.20 of its norm" in text and "by 1.0e-15" in text


def test_content_style_section_has_one_row_per_run():
    rows = [
        dict(variant=v, objective=o, content_r2_nonlinear=0.95, style_baseline_r2_nonlinear=0.0)
        for v, o in exp.CONTENT_STYLE_RUNS
    ]
    text = exp.format_content_style(rows)
    body = [line for line in text.splitlines() if line.startswith("| ") and "0.950" in line]
    assert len(body) == len(exp.CONTENT_STYLE_RUNS)
    assert "n/a" in body[0]  # a missing number is marked, not invented


def test_main_refuses_to_overwrite_before_any_work(tmp_path, capsys):
    (tmp_path / "identifiability.md").write_text("earlier results")
    with pytest.raises(SystemExit):
        exp.main(["--studies", "linear", "--out_dir", str(tmp_path)])
    assert "already holds ['identifiability.md']" in capsys.readouterr().err
    assert (tmp_path / "identifiability.md").read_text() == "earlier results"
    with pytest.raises(SystemExit):
        exp.main(["--studies", "linear,nope", "--out_dir", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()


def test_ivae_section_has_one_row_per_model_with_its_weights():
    from ssljax.identifiability.nonlinear_ica import IVAE_PAPER

    r = {"setting": {"steps": 10}, "paper": IVAE_PAPER}
    for name, w, mcc in (("ivae", [100, 1, 0, 10], 0.91), ("vae", [1000, 1, 1, 1], 0.62)):
        r[name] = {"weights": w, "mcc": mcc, "mcc_untrained": 0.4, "final_loss": -1.0}
        r[name]["mcc_per_seed"] = [mcc - 0.01, mcc, mcc + 0.02]
    r["ivae_elbo"] = {"weights": None, "mcc": 0.7, "mcc_untrained": 0.4, "final_loss": 3.0}
    r["ivae_above_vae"] = [True, False, True]
    text = exp.format_ivae(r)
    lines = [
        line for line in text.splitlines() if line.startswith("| iVAE") or line.startswith("| VAE")
    ]
    assert len(lines) == 3
    assert "(100, 1, 0, 10)" in lines[0] and "0.910" in lines[0]
    assert "(1000, 1, 1, 1)" in lines[1] and "0.620" in lines[1]
    assert "| ELBO |" in lines[2] and "0.700" in lines[2]
    assert "0.90, 0.91, 0.93" in lines[0]
    assert "iVAE above the VAE in 2 of 3 seeds." in text
