"""Transfer learning: weights imported from Keras applications and torchvision.

``from_torchvision(name, state_dict_or_path)`` and ``from_keras(name,
model_or_path)`` return a :class:`Converted` (cvx model name, options, head
size, ``{'params', 'batch_stats'}``, source preprocessing);
``save_converted``/``restore_converted`` write/read it as an orbax checkpoint
plus ``cvx_model.json`` (``python -m cvx.convert``).
"""
from cvx.transfer.checkpoint import Converted, restore_converted, save_converted
from cvx.transfer.keras import from_keras
from cvx.transfer.preprocessing import Preprocessing
from cvx.transfer.torchvision import from_torchvision
from cvx.transfer.freeze import Plan, make_plan
from cvx.transfer.recommend import Recommendation, recommend
