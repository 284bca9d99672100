"""Model zoo: ``create(name, num_classes=..., **kw)`` and ``list_models()``.

Importing this package registers every architecture module below.
"""
from cvx.models import (  # noqa: F401  (registration side effects)
    alexnet, densenet, efficientnet, googlenet, lenet, mlp, mobilenet, resnet, vgg,
    xception)
from cvx.models.registry import create, list_models, register

__all__ = ["create", "list_models", "register"]
