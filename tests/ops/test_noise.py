"""Noise statistics against the model and against skimage.util.random_noise."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data, util

from cvx.ops import noise

KEY = jax.random.PRNGKey(0)
HOW = ["eager", "jit", "vmap"]
GRAY = np.full((256, 256), 0.5, np.float32)  # far from the clip limits


def apply(how, fn, images):
  """``fn(key_i, image_i)``: eagerly, jitted, or vmapped over keys and images."""
  keys = jax.random.split(KEY, len(images))
  if how == "vmap":
    out = jax.vmap(fn)(keys, jnp.stack(images))
    return [out[i] for i in range(len(images))]
  f = jax.jit(fn) if how == "jit" else fn
  return [f(k, im) for k, im in zip(keys, images)]


@pytest.mark.parametrize("how", HOW)
def test_gaussian_moments(how):
  outs = apply(how, lambda k, im: noise.gaussian_noise(k, im, mean=0.05, var=0.01),
               [GRAY, GRAY])
  ref = util.random_noise(GRAY, mode="gaussian", mean=0.05, var=0.01, rng=0)
  n = GRAY.size  # standard errors: 0.1/256 for the mean, ~0.01·√(2/n) for var
  for out in outs:
    diff = np.asarray(out) - GRAY
    assert abs(diff.mean() - 0.05) < 4 * 0.1 / np.sqrt(n)
    assert abs(diff.var() - 0.01) < 4 * 0.01 * np.sqrt(2 / n)
    assert abs(diff.var() - (ref - GRAY).var()) < 8 * 0.01 * np.sqrt(2 / n)
  assert not np.array_equal(outs[0], outs[1])  # one key per example


def test_uint8_round_trip_and_clipping():
  image = data.camera()[:128, :128]
  out = noise.gaussian_noise(KEY, image, var=0.0)
  assert out.dtype == jnp.uint8
  np.testing.assert_array_equal(out, image)  # no noise: exact round trip
  out = np.asarray(noise.gaussian_noise(KEY, image, var=0.05))
  assert out.min() == 0 and out.max() == 255  # clipped, not wrapped
  photo = data.astronaut()[:64, :64] / 255.0
  out = np.asarray(noise.speckle(KEY, photo, var=0.5))
  assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("how", HOW)
def test_salt_and_pepper_fractions(how):
  image = data.astronaut()[:128, :128]  # uint8 RGB
  outs = apply(how, lambda k, im: noise.salt_and_pepper(k, im, amount=0.1,
                                                         salt_vs_pepper=0.3),
               [image, image])
  ref = util.random_noise(image, mode="s&p", amount=0.1, salt_vs_pepper=0.3, rng=0)
  n = image.size
  for out in outs:
    out = np.asarray(out)
    assert out.dtype == np.uint8
    changed = out != image
    kept = ~changed
    assert np.all(np.isin(out[changed], [0, 255]))
    np.testing.assert_array_equal(out[kept], image[kept])
    # Fractions of salt and pepper among all elements (elements already 0/255
    # may be hit without changing, so count values, not changes).
    salt = np.mean((out == 255) & (image != 255))
    pepper = np.mean((out == 0) & (image != 0))
    ref_salt = np.mean((ref == 1) & (image != 255))
    ref_pepper = np.mean((ref == 0) & (image != 0))
    se = np.sqrt(0.03 / n)
    assert abs(salt - ref_salt) < 8 * se and abs(pepper - ref_pepper) < 8 * se
    assert abs(salt + pepper - 0.1 * np.mean((image != 0) & (image != 255))) < 0.01


@pytest.mark.parametrize("how", HOW)
def test_speckle_relative_variance(how):
  outs = apply(how, lambda k, im: noise.speckle(k, im, var=0.02), [GRAY, GRAY])
  ref = util.random_noise(GRAY, mode="speckle", var=0.02, rng=0)
  n = GRAY.size
  for out in outs:
    rel = (np.asarray(out) - GRAY) / GRAY
    assert abs(rel.mean()) < 4 * np.sqrt(0.02 / n)
    assert abs(rel.var() - 0.02) < 4 * 0.02 * np.sqrt(2 / n)
    assert abs(rel.var() - ((ref - GRAY) / GRAY).var()) < 8 * 0.02 * np.sqrt(2 / n)


def test_batch_input_and_same_key_is_deterministic():
  batch = np.stack([data.astronaut()[:32, :32]] * 2)
  out = noise.salt_and_pepper(KEY, batch, amount=0.2)
  assert out.shape == batch.shape
  assert not np.array_equal(out[0], out[1])  # independent draws per element
  np.testing.assert_array_equal(out, noise.salt_and_pepper(KEY, batch, amount=0.2))


def test_bad_arguments():
  with pytest.raises(ValueError, match="amount"):
    noise.salt_and_pepper(KEY, GRAY, amount=1.5)
  with pytest.raises(ValueError, match="var"):
    noise.gaussian_noise(KEY, GRAY, var=-1.0)
  with pytest.raises(TypeError, match="int32"):
    noise.speckle(KEY, np.zeros((4, 4), np.int32))
