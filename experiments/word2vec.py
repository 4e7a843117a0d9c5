"""word2vec through ssljax's train step on the synthetic corpus, the Wikipedia extract (beside
gensim) or any text files (``main`` and its helpers live in ``ssljax.experiments.word2vec``;
see its docstring).

  python experiments/word2vec.py --corpus synthetic --out_dir runs/word2vec
  python experiments/word2vec.py --corpus wiki --out_dir runs/word2vec_wiki
"""

from ssljax.experiments.word2vec import main

if __name__ == "__main__":
    raise SystemExit(main())
