"""Flax (linen) layers shared by the model zoo; NHWC throughout.

One module per concept: `conv` (Conv with explicit pads, conv-BN-activation,
depthwise/pointwise/separable), `conv_lowering` (the CPU convolutions:
oneDNN custom calls from `onednn`, or a matmul-friendly lowering), `pooling`, `norm` (local response normalization),
`inception`, `residual`, `dense` (DenseNet), `xception`, `mbconv`
(MBConv with squeeze-excitation).
"""
from cvx.layers.conv import Conv, ConvBN, DepthwiseConv, SeparableConv, pointwise, same_padding
from cvx.layers.dense import DenseBlock, Transition
from cvx.layers.inception import Inception, InceptionAux
from cvx.layers.mbconv import MBConv, SqueezeExcite
from cvx.layers.norm import LocalResponseNorm
from cvx.layers.pooling import AdaptiveAvgPool, AvgPool, GlobalAvgPool, MaxPool
from cvx.layers.residual import BasicBlock, Bottleneck
from cvx.layers.xception import EntryFlow, ExitFlow, MiddleBlock, MiddleFlow, XceptionBlock

__all__ = [
    "AdaptiveAvgPool", "AvgPool", "BasicBlock", "Bottleneck", "Conv", "ConvBN", "DenseBlock",
    "DepthwiseConv", "EntryFlow", "ExitFlow", "GlobalAvgPool", "Inception", "InceptionAux",
    "LocalResponseNorm", "MBConv", "MaxPool", "MiddleBlock", "MiddleFlow", "SeparableConv",
    "SqueezeExcite", "Transition", "XceptionBlock", "pointwise", "same_padding",
]
