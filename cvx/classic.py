"""Classic classifiers for handcrafted features (:mod:`cvx.features`).

``make_classifier(name)`` is a scikit-learn ``Pipeline``: a
``StandardScaler`` then an SVM (``SVC``), Gaussian naive Bayes or logistic
regression, fitted on N×D feature arrays with ``fit(x, y)`` and
``predict(x)`` as usual.
"""
import difflib

from sklearn import linear_model, naive_bayes, pipeline, preprocessing, svm

# name → (estimator class, defaults that differ from scikit-learn's).
CLASSIFIERS = {
    "svm": (svm.SVC, {}),
    "naive_bayes": (naive_bayes.GaussianNB, {}),
    "logistic_regression": (linear_model.LogisticRegression, {"max_iter": 2000}),
}


def make_classifier(name: str, scale: bool = True, **params) -> pipeline.Pipeline:
  """A scaler + classifier pipeline by name.

  Args:
    name: 'svm' (RBF ``SVC``), 'naive_bayes' (``GaussianNB``) or
      'logistic_regression' (``LogisticRegression``, max_iter 2000).
    scale: standardise each feature (zero mean, unit variance) first.
    **params: the classifier's scikit-learn parameters, e.g. ``C=10``.

  Returns:
    An unfitted ``Pipeline`` with steps 'scaler' (if ``scale``) and 'classifier'.

  Raises:
    ValueError: unknown ``name`` or parameter.
  """
  if name not in CLASSIFIERS:
    close = difflib.get_close_matches(str(name), CLASSIFIERS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"make_classifier: unknown classifier {name!r}{hint}; "
                     f"allowed: {sorted(CLASSIFIERS)}")
  cls, defaults = CLASSIFIERS[name]
  allowed = cls().get_params()
  unknown = sorted(set(params) - set(allowed))
  if unknown:
    raise ValueError(f"make_classifier: {cls.__name__} ({name!r}) has no parameter "
                     f"{', '.join(unknown)}; allowed: {sorted(allowed)}")
  steps = [("scaler", preprocessing.StandardScaler())] if scale else []
  steps.append(("classifier", cls(**{**defaults, **params})))
  return pipeline.Pipeline(steps)
