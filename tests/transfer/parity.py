"""Helpers shared by the parity tests: random images and the comparison."""
import numpy as np

RTOL = 1e-4
ATOL = 1e-5  # relative to the largest reference value


def images(seed: int, size: int) -> np.ndarray:
  """Two random uint8 RGB images, N×H×W×3."""
  return np.random.RandomState(seed).randint(0, 256, (2, size, size, 3)).astype(np.uint8)


def assert_close(got, want):
  """rtol 1e-4, atol 1e-5·max|want|; ``want`` must not be degenerate (equal values)."""
  got, want = np.asarray(got), np.asarray(want).reshape(np.shape(got))
  scale = np.abs(want).max()
  assert np.ptp(want, axis=-1).min() > 1e-3 * scale > 0, "degenerate reference"
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale)
