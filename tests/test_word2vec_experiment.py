"""The word2vec driver: training through the library's step, checkpoints read back, the
synthetic study's scores from those checkpoints, and no overwriting."""

import dataclasses
import json
import os

import numpy as np
import pytest

from ssljax.experiments import word2vec as w2v_exp

TINY = dataclasses.replace(w2v_exp.SYNTHETIC, dim=16, epochs=2, batch_size=256)


def test_save_and_load_round_trip_and_refuse_an_existing_directory(tmp_path):
    params = {"input": np.arange(12.0).reshape(4, 3), "output": -np.ones((4, 3))}
    directory = tmp_path / "run"
    w2v_exp.save_embeddings(directory, params, ["a", "b", "c", "d"], [5, 3, 2, 1], {"x": 1})
    tables, words, counts, info = w2v_exp.load_embeddings(directory)
    np.testing.assert_array_equal(tables["input"], params["input"])
    np.testing.assert_array_equal(tables["output"], params["output"])
    assert words == ["a", "b", "c", "d"] and list(counts) == [5, 3, 2, 1] and info == {"x": 1}
    with pytest.raises(ValueError, match="exists; valid: a new directory"):
        w2v_exp.save_embeddings(directory, params, ["a"], [1], {})
    with pytest.raises(ValueError, match=r"vocabulary.json is missing"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "checkpoint").mkdir()
        w2v_exp.load_embeddings(tmp_path / "half")


def test_synthetic_study_learns_the_planted_structure(tmp_path):
    r = w2v_exp.synthetic_study(
        str(tmp_path),
        settings=TINY,
        num_tokens=30_000,
        variants=(("skip_gram", "negative_sampling"), ("cbow", "hierarchical_softmax")),
        log=lambda *_: None,
    )
    sg, cb = r["rows"]
    # Chance for a 60-word vocabulary is 1/57; both models are well above it after 2 epochs
    # of 30k tokens, and skip-gram's W C^T already tracks the exact shifted PMI.
    assert sg["analogy_chance"] == pytest.approx(1 / 57)
    assert (
        sg["analogy_add"] > 10 * sg["analogy_chance"]
        and cb["analogy_add"] > 5 * cb["analogy_chance"]
    )
    assert sg["pmi_correlation"] > 0.5 and "pmi_correlation" not in cb
    assert sg["similarity_spearman"] > 0.3
    for row in (sg, cb):
        assert os.path.isdir(row["checkpoint"])
        _, _, _, info = w2v_exp.load_embeddings(row["checkpoint"])
        assert info["model"] == row["model"] and info["steps"] == row["steps"]
    text = w2v_exp.format_synthetic(r)
    assert "| skip_gram | negative_sampling |" in text and "chance 0.018" in text


def test_text_study_on_files_reads_any_text(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    lines = [" ".join(rng.choice(words, size=12)) for _ in range(300)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines))
    sim = tmp_path / "sim.tsv"
    sim.write_text("# comment\nw1\tw2\t3.0\nw3\tw4\t1.0\nw5\tzzz\t2.0\nw6\tw7\t5.0\n")
    settings = dataclasses.replace(TINY, min_count=1, epochs=1)
    r = w2v_exp.text_study(
        str(tmp_path / "out"), [str(path)], settings=settings, wordsim=str(sim), log=lambda *_: None
    )
    (row,) = r["rows"]
    assert r["vocab_size"] == 30 and row["system"] == "ssljax"
    assert row["wordsim"]["pairs"] == 3 and row["wordsim"]["oov_pairs"] == 1
    assert row["tokens"] == 300 * 12


def test_main_refuses_to_overwrite_and_bad_corpus(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "word2vec.json").write_text(json.dumps({}))
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        w2v_exp.main(["--corpus", "synthetic", "--out_dir", str(out)])
    with pytest.raises(
        SystemExit, match=r"--corpus='news' is invalid; valid: synthetic, wiki, files"
    ):
        w2v_exp.main(["--corpus", "news", "--out_dir", str(tmp_path / "o2")])
    assert json.loads((out / "word2vec.json").read_text()) == {}


def test_profile_step_times_every_part():
    r = w2v_exp.profile_step(vocab_size=50, dim=8, batch=32, negatives=2, repeats=2)
    assert set(r) == {"loss", "gradient", "gradient_and_sgd", "row_updates"}
    assert all(v > 0 for v in r.values())
