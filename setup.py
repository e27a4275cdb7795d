"""jaxclean: find mislabeled examples from training dynamics recorded inside jitted JAX steps.

The wheel holds the package `jaxclean` only. The library's default config,
configs/default.py, goes in as `jaxclean.configs.default` (package_dir): the
command's and the Python API's default job. The other configs, experiments/
and third_party/ belong to a source checkout and stay out of site-packages.
"""
import pathlib

import setuptools

setuptools.setup(
    name="jaxclean",
    version="0.1.0",
    description="Scalable mislabel detection from per-example training dynamics in JAX.",
    long_description=(pathlib.Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    keywords=["label noise", "mislabel detection", "training dynamics", "AUM", "JAX"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=setuptools.find_packages(include=["jaxclean", "jaxclean.*"]),
    package_dir={"jaxclean.configs": "configs"},
    py_modules=["jaxclean.configs.default"],  # with configs/__init__.py; not the experiments'
    package_data={"jaxclean": ["templates/*.j2"]},  # the HTML report's template
    python_requires=">=3.10",
    entry_points={"console_scripts": ["jaxclean=jaxclean.main:run"]},
    install_requires=[
        "jax>=0.8",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11.20",  # ContinuousCheckpointingPolicy(minimum_interval_secs)
        "ml-collections>=1.0",
        "absl-py",
        "numpy>=1.26",
        "tensorflow-datasets>=4.9",
        "grain>=0.2.18",  # the input pipeline, ArrayRecord reads by index
        "array-record>=0.8",  # the converter's writer (grain reads it)
        "importlib_resources",  # tensorflow-datasets imports it without declaring it
        "scikit-learn>=1.3",  # embedded digits data set and detection metrics
        "pandas>=2",
        "pyarrow>=14",
        "pillow>=10",
        "tqdm>=4.60",
        "matplotlib>=3.7",  # the report's plots, written at the end of every run
        "Jinja2>=3",  # the report's page
    ],
    extras_require={
        # datasets: the hf: source's tests; nbclient, nbformat, ipykernel: docs/quickstart.ipynb's.
        # selenium: the report's review mode, driven in Debian's chromium by chromedriver.
        "test": ["pytest>=8", "scipy", "datasets>=2.19", "nbclient", "nbformat", "ipykernel",
                 "selenium>=4.20"],
        "hf": ["datasets>=2.19"],  # data.name=hf:<name or dir>
        # backbone.name=<preset>: pretrained image backbones (keras-hub on Keras' JAX backend).
        "pretrained": ["keras-hub>=0.32", "keras>=3.10"],
        "peers": ["cleanlab>=2.6"],
        "torch": ["torch"],
        "peers_torch": ["torch", "aum"],  # third_party/aum_reference.py, benchmarks/end_to_end.py
    },
)
