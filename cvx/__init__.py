"""cvx: classic computer vision and CNNs in JAX/Flax."""

__version__ = "0.1.0"
