// Stride-1 convs of single-channel images (grey first layers such as
// LeNet-5's), vectorised along image rows; see single_channel.cc.
#ifndef CVX_LAYERS_ONEDNN_SINGLE_CHANNEL_H_
#define CVX_LAYERS_ONEDNN_SINGLE_CHANNEL_H_

#include <cstdint>

namespace cvx {

// An undilated, ungrouped, stride-1 conv of x (images × height × width × 1)
// with an HWIO kernel w (taps_h × taps_w × 1 × out_c) into y (images × out_h ×
// out_w × out_c): y[n, h, w, c] = Σ_ij x[n, h + i − pad_top, w + j −
// pad_left] · w[i, j, 0, c], zeros outside x. Pads may be negative.
struct SingleChannelConv {
  int64_t images, height, width;
  int64_t taps_h, taps_w, out_c;
  int64_t out_h, out_w;
  int64_t pad_top, pad_left;
};

// Whether this CPU runs the functions below (they need AVX-512).
bool SingleChannelSupported();

void SingleChannelForward(const SingleChannelConv& s, const float* x, const float* w, float* y);
void SingleChannelInputGrad(const SingleChannelConv& s, const float* dy, const float* w,
                            float* dx);
// The result does not depend on the number of threads.
void SingleChannelKernelGrad(const SingleChannelConv& s, const float* x, const float* dy,
                             float* dw);

}  // namespace cvx

#endif  // CVX_LAYERS_ONEDNN_SINGLE_CHANNEL_H_
