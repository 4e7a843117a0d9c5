"""Identifiability: what a representation recovers of the process that generated the data.

Pure functions over arrays, in one module per topic:

* ``metrics``: mean correlation coefficient, Amari distance, block R^2;
* ``linear``: maximum-likelihood linear ICA, PPCA and factor analysis;
* ``mixing``: random invertible leaky-ReLU MLPs that mix sources into observations;
* ``fit``: trains an ``Objective`` on in-memory arrays through the library's train step;
* ``rotation``: the non-identifiability of disentanglement (Locatello et al. 2019);
* ``nonlinear_ica``: time-contrastive learning (Hyvarinen & Morioka 2016) and the iVAE
  (Khemakhem et al. 2020) on nonstationary sources;
* ``contrastive``: contrastive learning inverting the generating process (Zimmermann et al.
  2021) and content versus style (von Kugelgen et al. 2021).

``experiments/identifiability.py`` runs every study; ``docs/identifiability.md`` explains them.
Submodules are imported on use, so ``import ssljax.identifiability`` stays cheap.
"""
