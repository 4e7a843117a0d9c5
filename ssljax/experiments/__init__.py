"""The reusable parts of the scripts in ``experiments/`` (each script there is a thin ``main``
over its module here), so tests and other scripts import them from the package."""
