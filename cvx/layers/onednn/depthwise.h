// Stride-1 depthwise convs (one input channel per output channel) with 3×3
// or 5×5 kernels, vectorised over 16 channels at a time; see depthwise.cc.
#ifndef CVX_LAYERS_ONEDNN_DEPTHWISE_H_
#define CVX_LAYERS_ONEDNN_DEPTHWISE_H_

#include <cstdint>

namespace cvx {

// A stride-1 conv of x (images × height × width × channels) with an HWIO
// kernel k (taps_h × taps_w × 1 × channels) into y (images × out_h × out_w ×
// channels): y[n, h, w, c] = Σ_ij x[n, h + i·step_h − pad_top, w + j·step_w
// − pad_left, c] · k[i, j, 0, c], zeros outside x. step_h and step_w are the
// dilation (1: none); pads may be negative.
struct DepthwiseConv {
  int64_t images, height, width, channels;
  int64_t taps_h, taps_w;
  int64_t out_h, out_w;
  int64_t step_h, step_w;
  int64_t pad_top, pad_left;
};

// Whether this CPU runs the functions below on s: AVX-512, channels a
// multiple of 16, a 3×3 or 5×5 kernel, no empty dimension.
bool DepthwiseSupported(const DepthwiseConv& s);

void DepthwiseForward(const DepthwiseConv& s, const float* x, const float* k, float* y);
void DepthwiseInputGrad(const DepthwiseConv& s, const float* dy, const float* k, float* dx);
// The result does not depend on the number of threads.
void DepthwiseKernelGrad(const DepthwiseConv& s, const float* x, const float* dy, float* dk);

}  // namespace cvx

#endif  // CVX_LAYERS_ONEDNN_DEPTHWISE_H_
