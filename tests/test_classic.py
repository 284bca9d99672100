"""cvx.classic on the 8×8 digits: sensible accuracy, identical to plain scikit-learn."""
import functools

import jax
import numpy as np
import pytest
from sklearn import datasets, model_selection
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from cvx import classic, features


@functools.cache
def _digits():
  """8×8 digits as uint8 images (0..16 → 0..255) and a fixed 70/30 split."""
  digits = datasets.load_digits()
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
  return model_selection.train_test_split(images, digits.target, test_size=0.3,
                                          random_state=0, stratify=digits.target)


FEATURES = {
    "raw": jax.jit(features.raw_pixels),
    "hog": jax.jit(functools.partial(features.hog, orientations=9, pixels_per_cell=(2, 2),
                                     cells_per_block=(2, 2))),
    "gradients": jax.jit(functools.partial(features.gradient_histogram, grid=(2, 2))),
}
PEERS = {
    "svm": lambda: SVC(),
    "naive_bayes": lambda: GaussianNB(),
    "logistic_regression": lambda: LogisticRegression(max_iter=2000),
}
# Held-out accuracy floors (raw / HOG / gradients); typical values are well above.
FLOORS = {"svm": (0.97, 0.95, 0.9), "naive_bayes": (0.75, 0.8, 0.8),
          "logistic_regression": (0.94, 0.93, 0.85)}


@pytest.mark.parametrize("name", sorted(classic.CLASSIFIERS))
def test_trains_on_digits_and_equals_sklearn(name):
  x_train, x_test, y_train, y_test = _digits()
  for (kind, extract), floor in zip(FEATURES.items(), FLOORS[name]):
    f_train, f_test = np.asarray(extract(x_train)), np.asarray(extract(x_test))
    model = classic.make_classifier(name).fit(f_train, y_train)
    predicted = model.predict(f_test)
    accuracy = np.mean(predicted == y_test)
    assert accuracy >= floor, (kind, accuracy)
    peer = make_pipeline(StandardScaler(), PEERS[name]()).fit(f_train, y_train)
    np.testing.assert_array_equal(predicted, peer.predict(f_test), err_msg=kind)


def test_parameters_and_no_scaler():
  model = classic.make_classifier("svm", C=10, kernel="linear")
  assert list(model.named_steps) == ["scaler", "classifier"]
  assert model.named_steps["classifier"].get_params()["C"] == 10
  assert list(classic.make_classifier("naive_bayes", scale=False).named_steps) == ["classifier"]
  lr = classic.make_classifier("logistic_regression", max_iter=50).named_steps["classifier"]
  assert lr.max_iter == 50


@pytest.mark.parametrize("call, match", [
    (lambda: classic.make_classifier("svn"), "unknown classifier 'svn' .*did you mean 'svm'"),
    (lambda: classic.make_classifier("knn"), "allowed: \\['logistic_regression'"),
    (lambda: classic.make_classifier("svm", gamma_="scale"), "SVC .* no parameter gamma_"),
])
def test_bad_names_raise_value_error(call, match):
  with pytest.raises(ValueError, match=match):
    call()
