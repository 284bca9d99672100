"""The zoo's costs recomputed by cvx.analysis against published numbers.

Multiply-adds and parameters from GUIDE §5 (papers, torchvision and Keras
model cards); seed 000's MobileNet body table; receptive fields from Araujo,
Norris & Sim, "Computing Receptive Fields of CNNs" (Distill, 2019).
"""
import pytest

from cvx import analysis, models


def summarize(name, size=224, **kwargs):
  return analysis.summary(models.create(name, num_classes=1000, **kwargs), (size, size, 3))


@pytest.mark.parametrize("size, alpha, mmacs, params", [
    (224, 1.0, 569, 4_231_976), (192, 1.0, 418, 4_231_976), (160, 1.0, 290, 4_231_976),
    (128, 1.0, 186, 4_231_976), (224, 0.75, 325, 2_585_560), (224, 0.5, 149, 1_331_592),
    (224, 0.25, 41, 470_072)])
def test_mobilenet_v1_width_and_resolution_multipliers(size, alpha, mmacs, params):
  s = summarize("mobilenet_v1", size, alpha=alpha)
  # The paper's millions are truncated or rounded (568.7 → 569, 290.7 → 290).
  assert s.macs / 1e6 == pytest.approx(mmacs, abs=1)
  assert s.params == params


@pytest.mark.parametrize("name, kwargs, size, gmacs, params", [
    ("resnet18", {}, 224, 1.81, 11_689_512),
    ("resnet34", {}, 224, 3.66, 21_797_672),
    ("resnet50", {}, 224, 4.09, 25_557_032),
    ("resnet50", {"version": "v1"}, 224, 3.86, 25_557_032),
    ("resnet101", {}, 224, 7.80, 44_549_160),
    ("resnet101", {"version": "v1"}, 224, 7.57, 44_549_160),
    ("resnet152", {}, 224, 11.51, 60_192_808),
    ("resnet152", {"version": "v1"}, 224, 11.28, 60_192_808),
    ("vgg16", {}, 224, 15.47, 138_357_544),
    ("vgg16_bn", {}, 224, 15.47, 138_365_992),
    ("vgg19", {}, 224, 19.63, 143_667_240),
    ("googlenet", {}, 224, 1.50, 6_624_904),
    ("densenet121", {}, 224, 2.83, 7_978_856),
    ("xception", {}, 299, 8.36, 22_855_952),
    ("efficientnet_b0", {}, 224, 0.39, 5_288_548)])
def test_published_multiply_adds(name, kwargs, size, gmacs, params):
  s = summarize(name, size, **kwargs)
  assert round(s.macs / 1e9, 2) == gmacs
  assert s.params == params


def test_alexnet_torchvision_multiply_adds():
  s = summarize("alexnet")
  assert round(s.macs / 1e9, 3) == 0.714
  assert s.params == 61_100_840


# Seed 000, "Table 1. MobileNet Body Architecture": (kernel, C_in per group or
# "dw", C_out, stride, input size). The paper prints s2 for the last depthwise
# conv, a known typo: its input and the next layer's input are both 7×7.
MOBILENET_BODY = (
    [(3, 3, 32, 2, 224)]
    + [(3, "dw", 32, 1, 112), (1, 32, 64, 1, 112),
       (3, "dw", 64, 2, 112), (1, 64, 128, 1, 56),
       (3, "dw", 128, 1, 56), (1, 128, 128, 1, 56),
       (3, "dw", 128, 2, 56), (1, 128, 256, 1, 28),
       (3, "dw", 256, 1, 28), (1, 256, 256, 1, 28),
       (3, "dw", 256, 2, 28), (1, 256, 512, 1, 14)]
    + [(3, "dw", 512, 1, 14), (1, 512, 512, 1, 14)] * 5
    + [(3, "dw", 512, 2, 14), (1, 512, 1024, 1, 7),
       (3, "dw", 1024, 1, 7), (1, 1024, 1024, 1, 7)])


def test_mobilenet_v1_body_table_seed_000():
  s = summarize("mobilenet_v1")
  convs = [l for l in s.layers if l.type == "Conv"]
  assert len(convs) == len(MOBILENET_BODY) == 27
  for layer, (k, c_in, c_out, stride, size) in zip(convs, MOBILENET_BODY):
    depthwise = c_in == "dw"
    assert layer.input_shape == (size, size, c_out if depthwise else c_in), layer.name
    assert layer.params == k * k * (1 if depthwise else c_in) * c_out, layer.name
    assert layer.detail == f"{k}×{k}/{stride}" + (" depthwise" if depthwise else "")
  pool, head = (next(l for l in s.layers if l.type == t) for t in ("GlobalAvgPool", "Dense"))
  assert pool.input_shape == (7, 7, 1024) and pool.output_shape == (1024,)
  assert head.detail == "1024→1000" and head.params == 1024 * 1000 + 1000


@pytest.mark.parametrize("name, kwargs, rf", [
    ("alexnet", {}, 195), ("vgg16", {}, 212), ("mobilenet_v1", {}, 315),
    ("mobilenet_v1", {"alpha": 0.75}, 315), ("resnet50", {"version": "v1"}, 483),
    ("resnet101", {"version": "v1"}, 1027), ("resnet152", {"version": "v1"}, 1507)])
def test_published_receptive_fields(name, kwargs, rf):
  s = summarize(name, **kwargs)
  last_map = [l for l in s.layers if len(l.output_shape) == 3][-1]
  assert last_map.field.rf == (rf, rf) and last_map.field.jump == (32, 32)
