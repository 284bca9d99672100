"""What CNNs see: class activation maps, saliency, guided backprop, receptive
fields, visualizations.

Models expose named features through :func:`cvx.models.features.tap`; every
function here works on those names (``"last_conv"``, ``"stage2"``, …). The
maps (CAM, Grad-CAM, saliency, guided backprop, receptive fields) take a batch
with one target class per example and run under ``jax.jit``; overlays and tiles
are NumPy images for display.

- :mod:`~cvx.explain.cam`: ``cam``, ``grad_cam``, ``grad_cam_plus_plus``,
  ``normalize``, ``upsample`` (and ``feature_and_gradient``, ``target_scores``).
- :mod:`~cvx.explain.guided`: ``guided_backprop``, ``guided_grad_cam``,
  ``guide_relus``, ``guided_relu``.
- :mod:`~cvx.explain.saliency`: ``saliency``, ``deletion_insertion``.
- :mod:`~cvx.explain.overlay`: ``overlays``, ``write_png``.
- :mod:`~cvx.explain.visualize`: ``filter_tiles``, ``feature_map_tiles``,
  ``maximize_activation``.
- :mod:`~cvx.explain.receptive_field`: ``analytic``, ``step``, ``effective``,
  ``effective_fields``, ``support``.
"""
