"""Model zoo: ``create(name, num_classes=..., **kw)`` and ``list_models()``.

Importing this package registers every architecture module below.
"""
from cvx.models import lenet, mlp  # noqa: F401  (registration side effects)
from cvx.models.registry import create, list_models, register

__all__ = ["create", "list_models", "register"]
