"""word2vec through the main loop: text corpora as pretraining data, the configs, the
8-device step, resumption, and evaluation from the checkpoint."""

import json

import jax
import ml_collections
import numpy as np
import pytest

from ssljax import config_base
from ssljax.data import text_source
from ssljax.data.input_pipeline import epoch_seed
from ssljax.training.loop import (
    build_setup,
    initial_state,
    restore_for_eval,
    train_and_evaluate,
    validate_config,
)
from tests.multidevice import steps_on_devices
from tests.tolerances import assert_close, assert_updates_close, f32_steps_rtol

TINY_TOKENS = 20_000


def tiny_config(method="skip_gram", output="negative_sampling", steps=60, batch=64):
    c = config_base.load_config(f"configs/{method}.py:synthetic_text")
    c.dataset.num_tokens = TINY_TOKENS
    c.dataset.num_bases = 10
    c.objective.output = output
    c.objective.dim = 8
    c.objective.window = 2
    c.batch_size = batch
    c.total_steps = steps
    c.checkpoint_every_steps = 1000
    return c


def files_config(tmp_path, text, **dataset):
    path = tmp_path / "corpus.txt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    c = config_base.load_config("configs/skip_gram.py:text_files")
    c.dataset.paths = str(path)
    c.dataset.min_count = 1
    for key, value in dataset.items():
        c.dataset[key] = value
    return c, str(path)


# ---------------------------------------------------------------------------------------------
# Corpora and batches.


def test_text_settings_fill_defaults_and_refuse_foreign_keys():
    c = tiny_config()
    settings = text_source.text_settings(c.dataset)
    assert settings["num_tokens"] == TINY_TOKENS and settings["agreement"] == 0.7
    bad = ml_collections.ConfigDict(dict(name="synthetic_text", paths="a.txt"))
    with pytest.raises(ValueError, match=r"dataset.paths='a.txt' is not a setting") as err:
        text_source.text_settings(bad)
    assert "\n" not in str(err.value) and "corpus_seed" in str(err.value)
    with pytest.raises(ValueError, match="dataset.paths is empty"):
        text_source.text_settings(ml_collections.ConfigDict(dict(name="text_files")))


def test_text_files_corpus_counts_words_and_names_bad_files(tmp_path):
    c, path = files_config(tmp_path, "the cat sat\nthe dog sat\n\nthe cat ran\n")
    corpus = text_source.load_corpus(c.dataset)
    assert corpus.vocabulary.words[0] == "the" and corpus.num_tokens == 9
    assert dict(zip(corpus.vocabulary.words, corpus.counts))["cat"] == 2
    facts = text_source.text_facts(corpus)
    assert facts.vocab_size == 5 and facts.num_examples == 9 and facts.is_text
    empty, empty_path = files_config(tmp_path, "  \n")
    with pytest.raises(ValueError, match=f"{empty_path} is empty") as err:
        text_source.load_corpus(empty.dataset)
    assert "\n" not in str(err.value)
    latin, latin_path = files_config(tmp_path, "caf\xe9 ok\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"{latin_path} is not UTF-8 text at line 1"):
        text_source.load_corpus(latin.dataset)


def _all_batches(iterator, count):
    return [next(iterator) for _ in range(count)]


def test_batches_are_deterministic_resume_exactly_and_cover_each_epoch_once():
    c = tiny_config(batch=512)
    corpus = text_source.load_corpus(c.dataset)
    setup = build_setup(c, text_source.text_facts(corpus))
    per_epoch = text_source.text_steps_per_epoch(
        corpus, setup.objective, global_batch_size=512, seed=0
    )
    total = per_epoch + 5  # into the second epoch
    make = lambda start=0: text_source.text_train_iterator(  # noqa: E731
        corpus, setup.objective, global_batch_size=512, seed=0, start_step=start, num_devices=8
    )
    fresh = _all_batches(make(), total)
    assert fresh[0]["image"].shape == (8, 64) and fresh[0]["negatives"].shape == (8, 64, 5)
    again = _all_batches(make(), total)
    resumed = _all_batches(make(per_epoch - 2), 7)  # across the epoch boundary
    for a, b in zip(fresh, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    for a, b in zip(fresh[per_epoch - 2 :], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # The first epoch's batches are distinct examples of that epoch (no example twice).
    examples = setup.objective.text_examples(
        list(corpus.sentences),
        corpus.counts,
        epoch_seed(0, 0) % 2**31,
    )
    rows = {
        (int(x), int(t), *map(int, n))
        for x, t, n in zip(examples["image"], examples["target"], examples["negatives"])
    }
    seen = [
        (int(x), int(t), *map(int, n))
        for b in fresh[:per_epoch]
        for x, t, n in zip(b["image"].ravel(), b["target"].ravel(), b["negatives"].reshape(-1, 5))
    ]
    assert set(seen) <= rows
    assert len(seen) == per_epoch * 512 and len(examples["target"]) - len(seen) < 512
    # The second epoch draws new windows and noise words.
    assert not np.array_equal(fresh[per_epoch]["negatives"], fresh[0]["negatives"])


# ---------------------------------------------------------------------------------------------
# Configs and bad input.


@pytest.mark.parametrize("method", ["skip_gram", "cbow"])
def test_configs_validate_and_size_the_tables_from_the_corpus(method):
    for dataset in ("synthetic_text", "text_files"):
        c = config_base.load_config(f"configs/{method}.py:{dataset}")
        assert c.objective.name == method and c.objective.vocab_size == 0
        if dataset == "synthetic_text":
            validate_config(c)
    c = tiny_config(method)
    setup = build_setup(c)
    state = initial_state(c, setup)
    vocab = setup.run.facts.vocab_size
    assert vocab == 20  # 10 bases x 2 attributes
    assert state.params["input"].shape == (vocab, 8)
    assert state.params["output"].shape == (vocab, 8)
    c.objective.output = "hierarchical_softmax"
    state = initial_state(c, build_setup(c))
    assert state.params["output"].shape == (vocab - 1, 8)


def _one_line_error(fn, *needles):
    with pytest.raises(ValueError) as err:
        fn()
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_bad_text_inputs_are_one_line_errors(tmp_path):
    image_objective = tiny_config()
    image_objective.objective = config_base.objective("simclr")
    _one_line_error(
        lambda: validate_config(image_objective),
        "objective 'simclr' trains on image",
        "'synthetic_text' is text",
    )
    text_on_images = config_base.load_config("configs/simclr.py:fashion_mnist")
    text_on_images.objective = config_base.objective("skip_gram")
    _one_line_error(
        lambda: validate_config(text_on_images), "'skip_gram' trains on text", "synthetic_text"
    )
    small, _ = files_config(tmp_path, "a b c\nb c a\n")  # 3 words, window 5
    _one_line_error(
        lambda: build_setup(small), "vocabulary of 3 words is not larger than objective.window=5"
    )
    wrong_size = tiny_config()
    wrong_size.objective.vocab_size = 7
    _one_line_error(lambda: build_setup(wrong_size), "objective.vocab_size=7 differs", "20")
    none, _ = files_config(tmp_path, "a b c\n", min_count=9)
    _one_line_error(lambda: build_setup(none), "min_count=9 keeps no word")
    missing = tiny_config()
    missing.dataset = ml_collections.ConfigDict(
        dict(name="text_files", paths=str(tmp_path / "nope.txt"))
    )
    _one_line_error(lambda: build_setup(missing), "nope.txt does not exist")


# ---------------------------------------------------------------------------------------------
# The step over devices, the loop, resumption and evaluation.


@pytest.mark.parametrize(
    "method,output", [("skip_gram", "negative_sampling"), ("cbow", "hierarchical_softmax")]
)
def test_eight_devices_equal_one_device(method, output):
    c = tiny_config(method, output, batch=64)
    corpus = text_source.load_corpus(c.dataset)
    setup = build_setup(c, text_source.text_facts(corpus))
    batches = _all_batches(
        text_source.text_train_iterator(
            corpus, setup.objective, global_batch_size=64, seed=0, num_devices=1
        ),
        3,
    )
    init = jax.device_get(initial_state(c, setup))

    def run(devices):
        state, history = steps_on_devices(
            objective=setup.objective,
            model=setup.train_model,
            tx=setup.tx,
            config=c,
            run=setup.run,
            init=init,
            devices=devices,
            # the iterator's [1, n, ...] layout flattened to global batches
            batches=[{k: v.reshape((-1,) + v.shape[2:]) for k, v in b.items()} for b in batches],
            schedule=setup.schedule,
        )
        return state, [float(m["loss"]) for m in history]

    s8, l8 = run(jax.devices()[:8])
    s1, l1 = run(jax.devices()[:1])
    # Longest reduction: the gradient of a table row sums over the batch's examples.
    n_terms = 64 * 2 * int(c.objective.window) * (int(c.objective.negatives) + 1)
    for a, b in zip(l8, l1):
        assert_close(a, b, rtol=f32_steps_rtol(n_terms, steps=0))
    assert_updates_close(s8.params, s1.params, init.params, rtol=f32_steps_rtol(n_terms, 3))
    # The steps moved the tables: the comparison is not of two untouched copies.
    assert np.linalg.norm(s1.params["output"] - init.params["output"]) > 1e-3


def test_train_resume_and_evaluate_from_the_checkpoint(tmp_path):
    from ssljax.evaluation.text_workdir import evaluate_text_workdir, is_text_workdir

    c = tiny_config(steps=1500, batch=128)
    c.dataset.num_tokens = 60_000
    straight = str(tmp_path / "straight")
    result = train_and_evaluate(c, straight, progress=False)
    assert result["status"] == "completed" and result["step"] == 1500
    split = str(tmp_path / "split")
    assert train_and_evaluate(c, split, max_steps=700, progress=False)["status"] == "stopped"
    assert train_and_evaluate(c, split, progress=False)["step"] == 1500
    _, _, a, _ = restore_for_eval(straight)
    _, _, b, _ = restore_for_eval(split)
    # Same batches in the same order: only the rounding of one machine's runs differs.
    for key in ("input", "output"):
        np.testing.assert_allclose(a.params[key], b.params[key], rtol=1e-5, atol=1e-6)

    assert is_text_workdir(straight)
    report = evaluate_text_workdir(straight)
    scores = report["scores"]
    stored = json.loads((tmp_path / "straight" / "evaluate.json").read_text())
    assert stored["scores"]["pmi_correlation"] == pytest.approx(scores["pmi_correlation"])
    # 20 words in 10 pairs that differ in one attribute: the vectors learn the corpus's
    # structure (a random table has correlations near 0 and analogies at chance).
    assert scores["pmi_correlation"] > 0.6, scores
    assert scores["similarity_spearman"] > 0.5, scores
    assert scores["analogy_add"] > 5 * scores["analogy_chance"], scores


def test_command_line_train_evaluate_and_errors(tmp_path):
    """The README's commands on a text run, as subprocesses: train, evaluate with a
    word-similarity file, and the one-line errors of the image-only and bad-input paths."""
    from tests.test_cli import assert_one_line_error, run

    workdir = tmp_path / "run"
    common = [
        "--config.dataset.num_tokens=20000",
        "--config.total_steps=300",
        "--config.objective.dim=8",
        "--quiet",
    ]
    proc = run(["ssljax.train", "--config=configs/skip_gram.py", f"--workdir={workdir}", *common])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "completed at step 300" in proc.stdout
    wordsim = tmp_path / "wordsim.tsv"
    # Pairs of the synthetic vocabulary, and one pair outside it.
    wordsim.write_text("x00_0\tx00_1\t9.0\nx00_0\tx05_0\t5.0\nx01_0\tx09_1\t1.0\nfoo\tbar\t3\n")
    proc = run(["ssljax.evaluate", f"--workdir={workdir}", f"--wordsim={wordsim}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pmi_correlation" in proc.stdout and "nearest to x00_0" in proc.stdout
    report = json.loads((workdir / "evaluate.json").read_text())
    assert report["step"] == 300 and report["scores"]["wordsim"]["oov_pairs"] == 1
    proc = run(["ssljax.linear_eval", f"--workdir={workdir}"])
    assert_one_line_error(proc, r"word vectors .* python -m ssljax.evaluate --workdir")
    proc = run(
        [
            "ssljax.train",
            "--config=configs/skip_gram.py:text_files",
            f"--workdir={tmp_path / 'bad'}",
            f"--config.dataset.paths={tmp_path / 'missing.txt'}",
        ]
    )
    assert_one_line_error(proc, r"missing.txt does not exist")
    assert not (tmp_path / "bad" / "checkpoints").exists()
