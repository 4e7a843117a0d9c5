"""Text corpora as pretraining data of ``python -m ssljax.train`` (word2vec objectives).

A config trains on text when ``config.dataset.name`` is one of ``TEXT_DATASETS``:

``synthetic_text``
  The corpus of ``ssljax.data.text.synthetic_corpus``, generated in code from
  ``dataset.corpus_seed`` with exactly known pair statistics (true PMI, planted analogies).
  Keys: ``corpus_seed`` (0), ``num_tokens`` (200,000), ``num_bases`` (30),
  ``num_attributes`` (2), ``sentence_length`` (20), ``agreement`` (0.7).
``text_files``
  Any UTF-8 text files (``etils.epath`` paths: local or ``gs://``), one sentence per line,
  tokenised by ``ssljax.data.text.tokenize``. Keys: ``paths`` (comma-separated, required),
  ``min_count`` (5), ``max_vocab`` (None: every word with ``min_count``).

The corpus is read once per run into host memory (``load_corpus``). Each epoch the
objective's ``text_examples(sentences, counts, seed)`` turns it into examples (word2vec:
(centre, context) pairs or windows with noise words or Huffman paths, drawn with the
epoch's own subsampling and dynamic windows); the epoch is shuffled from ``(seed, epoch)``
and cut into global batches, the last partial one dropped. Every process builds the same
examples and feeds its slice of each global batch, so a run gives the same global batches
on any number of processes, and ``text_train_iterator(..., start_step=k)`` yields what a
fresh iterator yields from step ``k`` on (resumption).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator

import jax
import numpy as np

from ssljax.objectives.base import DatasetFacts

SYNTHETIC_TEXT = "synthetic_text"
TEXT_FILES = "text_files"
# Each text dataset's keys (besides ``name`` and the image datasets' keys, which stay None)
# and their defaults.
TEXT_DATASETS: dict[str, dict[str, Any]] = {
    SYNTHETIC_TEXT: dict(
        corpus_seed=0,
        num_tokens=200_000,
        num_bases=30,
        num_attributes=2,
        sentence_length=20,
        agreement=0.7,
    ),
    TEXT_FILES: dict(paths=None, min_count=5, max_vocab=None),
}


def is_text_dataset(dataset_cfg) -> bool:
    """Whether ``config.dataset`` names a text corpus."""
    return dataset_cfg is not None and dataset_cfg.get("name") in TEXT_DATASETS


def text_settings(dataset_cfg) -> dict:
    """The text dataset's settings with defaults filled in.

    Raises:
      ValueError: a key the dataset does not have that is set (not None), naming the valid
        keys; ``text_files`` without ``paths``.
    """
    items = dataset_cfg.to_dict() if hasattr(dataset_cfg, "to_dict") else dict(dataset_cfg)
    name = items.pop("name")
    defaults = TEXT_DATASETS[name]
    settings = dict(defaults)
    for key, value in items.items():
        if key in defaults:
            if value is not None:
                settings[key] = value
        elif value is not None:
            raise ValueError(
                f"dataset.{key}={value!r} is not a setting of the {name} corpus; valid keys: "
                f"{', '.join(defaults)}"
            )
    if name == TEXT_FILES and not settings["paths"]:
        raise ValueError(
            "dataset.paths is empty; valid: comma-separated UTF-8 text files, e.g. "
            "--config.dataset.paths=a.txt,b.txt"
        )
    return settings


def _paths(value) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [os.fspath(p) for p in value]


@dataclasses.dataclass(frozen=True)
class TextCorpus:
    """A corpus as token-id sentences over its vocabulary.

    Attributes:
      name: the dataset's name (``TEXT_DATASETS``).
      sentences: ``int32`` arrays, one per sentence (line), each at least two tokens.
      vocabulary: ``ssljax.data.text.Vocabulary`` (words by decreasing count).
      synthetic: for ``synthetic_text``, ``{'params': SyntheticCorpusParams,
        'planted_analogies': int [n, 4]}`` (the exact statistics); else None.
    """

    name: str
    sentences: tuple[np.ndarray, ...]
    vocabulary: Any
    synthetic: dict | None = None

    @property
    def num_tokens(self) -> int:
        return int(sum(len(s) for s in self.sentences))

    @property
    def counts(self) -> np.ndarray:
        return self.vocabulary.counts


def load_corpus(dataset_cfg) -> TextCorpus:
    """Reads or generates the corpus of ``config.dataset`` (one-line errors: an unknown key,
    a missing, empty or non-UTF-8 file named by path, a ``min_count`` that keeps no word)."""
    from ssljax.data import text

    name = dataset_cfg.get("name")
    settings = text_settings(dataset_cfg)
    if name == SYNTHETIC_TEXT:
        corpus = text.synthetic_corpus(
            int(settings["corpus_seed"]),
            num_tokens=int(settings["num_tokens"]),
            num_bases=int(settings["num_bases"]),
            num_attributes=int(settings["num_attributes"]),
            sentence_length=int(settings["sentence_length"]),
            agreement=float(settings["agreement"]),
        )
        sentences = tuple(np.asarray(s, np.int32) for s in corpus["sentences"])
        synthetic = {"params": corpus["params"], "planted_analogies": corpus["planted_analogies"]}
        return TextCorpus(name, sentences, corpus["vocabulary"], synthetic)
    paths = _paths(settings["paths"])
    for path in paths:
        _check_nonempty(path)
    token_lists = list(text.read_text_files(paths))
    vocabulary = text.build_vocabulary(
        token_lists, min_count=int(settings["min_count"]), max_size=settings["max_vocab"]
    )
    sentences = tuple(s for s in (vocabulary.ids(t) for t in token_lists) if len(s) > 1)
    if not sentences:
        raise ValueError(
            f"{', '.join(paths)}: no line has two words of the vocabulary (min_count="
            f"{settings['min_count']}); valid: more text or a lower dataset.min_count"
        )
    return TextCorpus(name, sentences, vocabulary)


def _check_nonempty(path: str) -> None:
    from etils import epath

    p = epath.Path(path)
    if not (p.exists() and p.is_file()):
        return  # read_text_files names a missing path or a folder
    with p.open("rb") as f:  # up to the first non-blank byte, not the whole file
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return
    raise ValueError(f"{path} is empty; valid: UTF-8 text with at least one sentence")


def text_facts(corpus: TextCorpus) -> DatasetFacts:
    """The run facts of a corpus: its vocabulary size and in-vocabulary tokens."""
    return DatasetFacts(
        name=corpus.name,
        image_shape=(),
        num_examples=corpus.num_tokens,
        num_classes=0,
        pretrain_split="train",
        in_memory=True,
        vocab_size=len(corpus.vocabulary),
    )


def _epoch_examples(objective, corpus: TextCorpus, seed: int, epoch: int) -> dict:
    from ssljax.data.input_pipeline import epoch_seed

    examples = objective.text_examples(
        list(corpus.sentences), corpus.counts, epoch_seed(seed, epoch) % 2**31
    )
    return {k: np.asarray(v) for k, v in examples.items()}


def text_train_iterator(
    corpus: TextCorpus,
    objective,
    *,
    global_batch_size: int,
    seed: int,
    start_step: int = 0,
    num_devices: int | None = None,
) -> Iterator[dict]:
    """Endless training batches of ``objective.text_examples`` for this process.

    Returns:
      An iterator of ``{key: [local_devices, per_device, ...]}`` (the keys of
      ``text_examples``), as ``ssljax.data.input_pipeline.train_iterator`` lays out images.

    Raises:
      ValueError: a bad batch or start step, or an epoch with fewer examples than one
        global batch.
    """
    from ssljax.data.input_pipeline import batch_layout, epoch_order

    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    local_devices, per_device = batch_layout(global_batch_size, num_devices)
    per_host = local_devices * per_device
    offset = jax.process_index() * per_host

    def batches():
        step, epoch = 0, 0
        while True:
            examples = _epoch_examples(objective, corpus, seed, epoch)
            n = int(next(iter(examples.values())).shape[0])
            steps = n // global_batch_size
            if steps == 0:
                raise ValueError(
                    f"an epoch of {corpus.name} gives {n} examples, fewer than one global "
                    f"batch of {global_batch_size}; valid: a smaller batch_size or more text"
                )
            if step + steps > start_step:
                order = epoch_order(n, steps, global_batch_size, seed, epoch)
                for row in order[max(start_step - step, 0) :]:
                    take = row[offset : offset + per_host]
                    yield {
                        k: v[take].reshape((local_devices, per_device) + v.shape[1:])
                        for k, v in examples.items()
                    }
            step += steps
            epoch += 1

    return batches()


def text_steps_per_epoch(corpus: TextCorpus, objective, *, global_batch_size: int, seed: int):
    """Global batches in the first epoch (later epochs differ slightly: their windows and
    subsampling are drawn anew)."""
    examples = _epoch_examples(objective, corpus, seed, 0)
    return int(next(iter(examples.values())).shape[0]) // int(global_batch_size)
