"""Classic image processing as pure JAX functions, named after OpenCV.

Images are H×W, H×W×C or N×H×W×C (RGB), uint8 or float in [0, 1]; every
op is jit-able and vmap-able. One module per family.
"""
from cvx.ops.borders import (BORDER_CONSTANT, BORDER_DEFAULT, BORDER_REFLECT, BORDER_REFLECT101,
                             BORDER_REFLECT_101, BORDER_REPLICATE, BORDER_WRAP, copy_make_border)
from cvx.ops.color import (bgr_to_rgb, gray_to_rgb, hsv_to_rgb, merge, rgb_to_bgr, rgb_to_gray,
                           rgb_to_hsv, split)
from cvx.ops.intensity import (ADAPTIVE_THRESH_GAUSSIAN_C, ADAPTIVE_THRESH_MEAN_C, THRESH_BINARY,
                               THRESH_BINARY_INV, THRESH_OTSU, THRESH_TOZERO, THRESH_TOZERO_INV,
                               THRESH_TRIANGLE, THRESH_TRUNC, adaptive_threshold, adjust_gamma,
                               bitwise_and, bitwise_not, bitwise_or, bitwise_xor, calc_hist,
                               contrast_stretch, convert_scale_abs, equalize_hist, negative,
                               soft_threshold, threshold)
from cvx.ops.filters import (bilateral_filter, blur, box_filter, filter2d, gaussian_blur,
                             get_deriv_kernels, get_gaussian_kernel, laplacian,
                             laplacian_of_gaussian, median_blur, scharr, sep_filter2d, sharpen,
                             sobel)
from cvx.ops.morphology import (MORPH_BLACKHAT, MORPH_CLOSE, MORPH_CROSS, MORPH_DILATE,
                                MORPH_ELLIPSE, MORPH_ERODE, MORPH_GRADIENT, MORPH_HITMISS,
                                MORPH_OPEN, MORPH_RECT, MORPH_TOPHAT, dilate, erode,
                                get_structuring_element, morphology_ex)
from cvx.ops.edges import canny, gradient_magnitude, gradient_orientation, log_zero_crossings
from cvx.ops.lines import HoughLines, hough_accumulator, hough_lines
from cvx.ops.labels import (CC_STAT_AREA, CC_STAT_HEIGHT, CC_STAT_LEFT, CC_STAT_TOP,
                            CC_STAT_WIDTH, connected_components,
                            connected_components_with_stats)
from cvx.ops.contours import (CHAIN_APPROX_NONE, CHAIN_APPROX_SIMPLE, RETR_CCOMP,
                              RETR_EXTERNAL, RETR_LIST, RETR_TREE, Contours, arc_length,
                              bounding_rect, contour_area, find_contours)
from cvx.ops.segmentation import KMeans, kmeans, kmeans_segment, threshold_segment
from cvx.ops.noise import gaussian_noise, salt_and_pepper, speckle
from cvx.ops.geometry import (INTER_AREA, INTER_LINEAR, INTER_NEAREST, ROTATE_180,
                              ROTATE_90_CLOCKWISE, ROTATE_90_COUNTERCLOCKWISE, WARP_INVERSE_MAP,
                              flip, get_rotation_matrix_2d, resize, rotate, rotate_about_center,
                              translate, warp_affine)
