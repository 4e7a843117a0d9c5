"""word2vec skip-gram (Mikolov et al. 2013): each word's vector predicts the words around it,
trained with negative sampling (``objective.output = 'negative_sampling'``, 5 noise words
from the count^0.75 distribution) or the hierarchical softmax over a Huffman tree
(``'hierarchical_softmax'``). At its optimum, skip-gram with k negatives factorises the
shifted PMI matrix, ``w . c = PMI(w, c) - log k`` (Levy & Goldberg 2014).

The optimizer is word2vec.c's: plain SGD at a per-pair rate alpha = 0.025 (the loss is a
batch mean, so the step's rate is alpha x batch_size), decayed to 1e-4 alpha; windows of
1..5 words drawn per centre word. Evaluation reads the checkpoint:
``python -m ssljax.evaluate --workdir DIR`` reports the Levy-Goldberg PMI correlation,
planted-analogy accuracy (3CosAdd, 3CosMul, with chance) and similarity Spearman on the
synthetic corpus; WordSim-353 and Google-analogy files by path (``--wordsim``,
``--analogies``) on any corpus.

Datasets (``--config configs/skip_gram.py:<dataset>``; default synthetic_text):

synthetic_text
  The corpus generated in code (``ssljax.data.text.synthetic_corpus``; 200,000 tokens, 60
  words, known PMI and 1,740 planted analogies). Dimension 50, no subsampling, batch 256
  pairs, 12,400 steps (3 epochs of about 1.06M pairs).

    python -m ssljax.train --config configs/skip_gram.py:synthetic_text --workdir runs/skip_gram
    python -m ssljax.evaluate --workdir runs/skip_gram

text_files
  Any UTF-8 text files, one sentence per line (``--config.dataset.paths=a.txt,b.txt``; local
  or gs:// paths). gensim's defaults: dimension 100, min count 5, subsampling 1e-3, batch
  4,096 pairs; 2,300 steps is 5 epochs of the 412k-token Wikipedia extract that ships with
  gensim (``experiments/word2vec.py --corpus wiki`` writes it as text). Set total_steps for
  other corpora: an epoch is about 4.6 pairs per kept token.

    python -m ssljax.train --config configs/skip_gram.py:text_files --workdir runs/skip_gram_text --config.dataset.paths=corpus.txt
    python -m ssljax.evaluate --workdir runs/skip_gram_text --wordsim wordsim353.tsv --analogies questions-words.txt
"""

import ml_collections

from ssljax import config_base

DATASETS = ("synthetic_text", "text_files")


def get_config(arg: str = "synthetic_text") -> ml_collections.ConfigDict:
    config_base.check_arg(arg, DATASETS, __file__)
    if arg == "synthetic_text":
        c = config_base.word2vec("skip_gram", arg, dim=50, subsample=0.0)
        c.batch_size = 256
        c.total_steps = 12_400
    else:
        c = config_base.word2vec("skip_gram", arg, dim=100, subsample=1e-3)
        c.batch_size = 4096
        c.total_steps = 2_300
    c.checkpoint_every_steps = 2_000
    return c
