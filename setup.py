"""reasonax: a JAX codebase for training reasoning language models end to end."""

import setuptools

setuptools.setup(
    name="reasonax",
    version="0.1.0",
    description="Pure-functional JAX transformers, Mamba-2 and hybrid models for reasoning LLM training.",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["model", "model.*", "train", "train.*", "rl", "rl.*",
                                               "data", "data.*", "configs", "configs.*"]),
    package_data={"data": ["corpus/*"]},
    install_requires=[
        "jax>=0.10,<0.12",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "grain>=0.2.12",
        "tensorflow-datasets>=4.9.8",
        "sentencepiece>=0.2",
        "ml-collections>=1.0",
        "einops>=0.8",
        "chex>=0.1.90",
        "absl-py>=2.1",
        "safetensors>=0.4",
        "tokenizers>=0.20",
        "math-verify>=0.9",
        "jinja2>=3.1.6",  # sandbox fixes; chat templates are untrusted
        "tensorboardX>=2.6",
        "tqdm>=4.66",
        "matplotlib>=3.8",  # the claims' plots
    ],
    extras_require={
        # libtpu (the TPU compiler, matched to the installed jax by jax's own extra):
        # `python -m train.aot` compiles for TPU topologies on any host with it.
        "tpu": ["jax[tpu]>=0.10,<0.12"],
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",  # pytest.ini runs the suite in 2 worker processes
            "filelock>=3",        # session runs made once across the workers (conftest)
            "torch==2.13.0",
            "transformers>=5.0",
            "jax[tpu]>=0.10,<0.12",
            "ipython>=8",  # notebooks/claims.ipynb displays the plots
        ],
    },
)
