"""Local tfds builders for the datasets that ship inside Python packages."""
from cvx.data.builders.digits8x8 import Digits8x8
from cvx.data.builders.mnist5k import Mnist5k

__all__ = ["Digits8x8", "Mnist5k"]
