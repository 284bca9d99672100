"""What CNNs see: class activation maps, saliency, guided backprop, receptive
fields, visualizations.

Models expose named features through :func:`cvx.models.features.tap`; every
function here works on those names (``"last_conv"``, ``"stage2"``, …).
"""
