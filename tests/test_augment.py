"""Augmentations: exact geometry on known cases, per-example keys, jit/vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from skimage import data, transform

from cvx import augment

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def photo():
  return jnp.asarray(transform.resize(data.astronaut(), (64, 64)), jnp.float32)


def test_flip_is_a_mirror_or_identity(photo):
  outs = [augment.flip(jax.random.PRNGKey(i), photo) for i in range(8)]
  assert all(np.array_equal(o, photo) or np.array_equal(o, photo[:, ::-1]) for o in outs)
  assert any(np.array_equal(o, photo[:, ::-1]) for o in outs)


def test_crop_is_a_window_of_the_reflect_padded_image(photo):
  out = np.asarray(augment.crop(KEY, photo, padding=4))
  padded = np.pad(np.asarray(photo), ((4, 4), (4, 4), (0, 0)), mode="reflect")
  windows = [padded[y:y + 64, x:x + 64] for y in range(9) for x in range(9)]
  assert any(np.array_equal(out, w) for w in windows)


def test_affine_without_range_is_identity(photo):
  out = augment.affine(KEY, photo, degrees=0, scale=0, shear=0, translate=0)
  np.testing.assert_allclose(out, photo, atol=1e-6)


def test_affine_rotation_matches_scipy(photo):
  # Recompute the angle the key draws and rotate with scipy by it.
  gray = photo[..., :1]
  key = jax.random.PRNGKey(3)
  out = augment.affine(key, gray, degrees=30, scale=0, shear=0, translate=0)
  k_rot = jax.random.split(key, 4)[0]
  angle = float(jax.random.uniform(k_rot, minval=-30, maxval=30))
  # 'grid-constant': points just outside blend with the fill, as cv2.warpAffine.
  want = ndimage.rotate(np.asarray(gray[..., 0]), -angle, reshape=False, order=1,
                        mode="grid-constant", cval=0.0)
  np.testing.assert_allclose(np.asarray(out[..., 0]), want, atol=1e-4)


def test_every_example_gets_its_own_draw_however_the_batch_is_split(photo):
  fn = augment.build("flip,crop,affine,jitter,noise")
  batch = jnp.stack([photo] * 8)
  whole = jax.jit(fn)(KEY, batch)
  assert not np.allclose(whole[0], whole[1])
  halves = [fn(KEY, batch[:4], 0), fn(KEY, batch[4:], 4)]
  # Same draws; eager vs jit-fused colour maths differ in the last float32 bits.
  np.testing.assert_allclose(jnp.concatenate(halves), whole, atol=1e-5)
  assert float(whole.min()) >= 0 and float(whole.max()) <= 1


def test_jitter_on_gray_changes_only_brightness_and_contrast(photo):
  gray = photo[..., :1]
  out = augment.jitter(KEY, gray)
  assert out.shape == gray.shape
  corr = np.corrcoef(np.asarray(out).ravel(), np.asarray(gray).ravel())[0, 1]
  assert corr > 0.99  # An affine intensity map (up to clipping).


def test_unknown_names_list_the_available_ones():
  with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['warp'\].*affine"):
    augment.build("flip, warp")
  assert augment.build(" , ") is None


def test_resized_crop_of_the_whole_image_is_identity(photo):
  out = augment.resized_crop(KEY, photo, scale=(1.0, 1.0), ratio=(1.0, 1.0))
  np.testing.assert_allclose(out, photo, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_resized_crop_matches_cv2_resize_of_its_box(photo, seed):
  import cv2  # pylint: disable=g-import-not-at-top
  key = jax.random.PRNGKey(seed)
  y0, x0, ch, cw = map(int, augment.resized_crop_box(key, 64, 64, (0.08, 1.0), (0.75, 4 / 3)))
  assert 1 <= ch <= 64 and 1 <= cw <= 64 and y0 + ch <= 64 and x0 + cw <= 64
  box = np.asarray(photo)[y0:y0 + ch, x0:x0 + cw]
  want = cv2.resize(box, (64, 64), interpolation=cv2.INTER_LINEAR)
  out = jax.jit(augment.resized_crop)(key, photo)
  np.testing.assert_allclose(out, want, atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_rotate_and_translate_equal_cv2_warp_affine_of_their_draws(photo, seed):
  import cv2  # pylint: disable=g-import-not-at-top
  key, image = jax.random.PRNGKey(seed), np.asarray(photo)
  angle = float(jax.random.uniform(key, minval=-15.0, maxval=15.0))
  m = cv2.getRotationMatrix2D((31.5, 31.5), angle, 1.0)
  np.testing.assert_allclose(jax.jit(augment.rotate)(key, photo),
                             cv2.warpAffine(image, m, (64, 64)), atol=1e-4)
  tx, ty = np.asarray(jax.random.uniform(key, (2,), minval=-0.1, maxval=0.1)) * 64
  m = np.float64([[1, 0, tx], [0, 1, ty]])
  np.testing.assert_allclose(jax.jit(augment.translate)(key, photo),
                             cv2.warpAffine(image, m, (64, 64)), atol=1e-4)


def test_geometric_augmentations_run_in_the_batched_builder(photo):
  batch = jnp.stack([photo] * 4)
  out = jax.jit(augment.build("rotate,translate"))(KEY, batch)
  assert out.shape == batch.shape and not np.allclose(out[0], out[1])
