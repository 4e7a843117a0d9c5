"""word2vec continuous bag of words (Mikolov et al. 2013): the mean of the context words'
vectors predicts the centre word, with negative sampling (``objective.output =
'negative_sampling'``) or the hierarchical softmax over a Huffman tree
(``'hierarchical_softmax'``). One example per centre word (skip-gram has one per pair), so
an epoch takes fewer, cheaper steps.

The optimizer is word2vec.c's: plain SGD at a per-example rate alpha = 0.05 (CBOW's default
in the C code; the step's rate is alpha x batch_size), decayed to 1e-4 alpha. Evaluation
reads the checkpoint: ``python -m ssljax.evaluate --workdir DIR`` (see configs/skip_gram.py).

Datasets (``--config configs/cbow.py:<dataset>``; default synthetic_text):

synthetic_text
  The corpus generated in code (200,000 tokens, 60 words). Dimension 50, no subsampling,
  batch 256 windows, 2,340 steps (3 epochs of 200,000 windows).

    python -m ssljax.train --config configs/cbow.py:synthetic_text --workdir runs/cbow
    python -m ssljax.evaluate --workdir runs/cbow

text_files
  Any UTF-8 text files (``--config.dataset.paths=a.txt,b.txt``). Dimension 100, min count 5,
  subsampling 1e-3, batch 4,096 windows, 380 steps: 5 epochs of the 412k-token Wikipedia
  extract (76 steps an epoch: subsampling keeps about 311k windows). Set total_steps for
  other corpora.

    python -m ssljax.train --config configs/cbow.py:text_files --workdir runs/cbow_text --config.dataset.paths=corpus.txt
    python -m ssljax.evaluate --workdir runs/cbow_text --wordsim wordsim353.tsv
"""

import ml_collections

from ssljax import config_base

DATASETS = ("synthetic_text", "text_files")


def get_config(arg: str = "synthetic_text") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    if arg == "synthetic_text":
        c = config_base.word2vec("cbow", arg, dim=50, subsample=0.0)
        c.batch_size = 256
        c.total_steps = 2_340
    else:
        c = config_base.word2vec("cbow", arg, dim=100, subsample=1e-3)
        c.batch_size = 4096
        c.total_steps = 380
    c.checkpoint_every_steps = 1_000
    return c
