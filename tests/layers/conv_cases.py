"""Conv cases shared by the CPU lowering tests: lax.conv_general_dilated's
arguments in NHWC/HWIO, covering strides, paddings, dilation, groups,
depthwise and batch 1."""
import jax

_DN = ("NHWC", "HWIO", "NHWC")

# (input N×H×W×C, kernel H×W×C_in/G×C_out, strides, padding, dilation, groups)
CASES = {
    "same_s1": ((2, 9, 7, 5), (3, 3, 5, 4), (1, 1), "SAME", (1, 1), 1),
    "same_s2": ((2, 9, 7, 5), (3, 3, 5, 4), (2, 2), "SAME", (1, 1), 1),
    "valid_s2_rect": ((2, 9, 7, 5), (3, 2, 5, 4), (2, 1), "VALID", (1, 1), 1),
    "explicit_dilated_batch1": ((1, 9, 7, 5), (3, 3, 5, 4), (2, 2), ((1, 2), (0, 1)),
                                (2, 1), 1),
    "negative_pad": ((2, 9, 9, 6), (3, 3, 6, 4), (1, 1), ((-1, 2), (0, -1)), (1, 1), 1),
    "5x5_pad2": ((2, 9, 9, 6), (5, 5, 6, 4), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "deep_patches_native_fwd": ((1, 5, 6, 72), (3, 3, 72, 8), (1, 1), "SAME", (1, 1), 1),
    "deep_patches_2x2_map_im2col": ((2, 2, 2, 80), (3, 3, 80, 32), (1, 1), "SAME", (1, 1), 1),
    # ≥ 32 output channels: im2col forward and kernel gradient; dX by col2im
    # (5 input channels) or by the im2col of the flipped kernel (40).
    "wide_out_s2_col2im": ((2, 9, 7, 5), (3, 3, 5, 32), (2, 2), "SAME", (1, 1), 1),
    "wide_in_and_out": ((2, 6, 6, 40), (3, 3, 40, 32), (1, 1), "SAME", (1, 1), 1),
    "1x1_s2": ((2, 9, 9, 6), (1, 1, 6, 4), (2, 2), "VALID", (1, 1), 1),
    # Strided unpadded 1×1: oneDNN gathers the pixels read, one matmul, and
    # scatters dX back; rows and columns past the last pixel read get zeros.
    "1x1_s3x2_odd": ((3, 8, 10, 5), (1, 1, 5, 12), (3, 2), "VALID", (1, 1), 1),
    "1x1_s1_col2im": ((2, 5, 6, 8), (1, 1, 8, 32), (1, 1), "VALID", (1, 1), 1),
    # Unpadded stride-1 1×1 convs on ≤ 16-pixel maps: one oneDNN matmul per
    # pass (SAME pads 0).
    "1x1_same_dilated_matmul": ((3, 4, 4, 24), (1, 1, 24, 40), (1, 1), "SAME", (2, 2), 1),
    # Stride-1 kernels of ≥ 25 taps: dX by the batch-minor col2im.
    "5x5_dilated_asymmetric_pad": ((3, 12, 11, 4), (5, 5, 4, 6), (1, 1),
                                   ((3, 1), (0, 2)), (2, 1), 1),
    "gray_5x5_pad2_taps": ((2, 9, 8, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "rgb_s2_dilated_taps": ((1, 9, 9, 3), (3, 3, 3, 5), (2, 2), "SAME", (2, 1), 1),
    # Few input channels, ≥ 16 output channels: oneDNN's dX by col2im.
    "rgb_wide_out_same": ((2, 9, 7, 3), (3, 3, 3, 16), (1, 1), "SAME", (1, 1), 1),
    "rgb_7x7_s2_dilated_asymmetric_pad": ((1, 13, 11, 3), (7, 7, 3, 16), (2, 2),
                                          ((3, 2), (1, 3)), (1, 2), 1),
    "gray_s3x2_negative_pad_wide_out": ((2, 10, 9, 1), (3, 3, 1, 32), (3, 2),
                                        ((-1, 2), (2, 0)), (1, 1), 1),
    "groups3": ((3, 8, 8, 6), (3, 3, 2, 9), (1, 1), "SAME", (1, 1), 3),
    "depthwise_s2_keras_pad": ((3, 8, 8, 6), (3, 3, 1, 6), (2, 2), ((0, 1), (0, 1)),
                               (1, 1), 6),
    "depthwise_mult2_dilated": ((1, 7, 8, 3), (3, 3, 1, 6), (1, 1), "SAME", (2, 2), 3),
}


def inputs(case, seed=0):
  x_shape, w_shape, *_ = case
  kx, kw = jax.random.split(jax.random.key(seed))
  return jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)


def conv_fn(impl, case):
  _, _, strides, padding, dilation, groups = case
  return lambda x, w: impl(x, w, strides, padding, rhs_dilation=dilation,
                           dimension_numbers=_DN, feature_group_count=groups)
