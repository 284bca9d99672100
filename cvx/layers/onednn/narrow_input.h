// Gradients of convs of images with few channels (first layers on grey or
// RGB images, LeNet-5's second conv) to whole 16-lane vectors of output
// channels, vectorised over those outputs; see narrow_input.cc.
#ifndef CVX_LAYERS_ONEDNN_NARROW_INPUT_H_
#define CVX_LAYERS_ONEDNN_NARROW_INPUT_H_

#include <cstdint>

namespace cvx {

constexpr int64_t kNarrowInputLanes = 16;
constexpr int64_t kNarrowInputMaxChannels = 8;

// An undilated, ungrouped conv of x (images × height × width × in_c, in_c ≤
// kNarrowInputMaxChannels) with an HWIO kernel w (taps_h × taps_w × in_c ×
// out_c, out_c a multiple of kNarrowInputLanes) into
// y (images × out_h × out_w × out_c): y[n, h, w, c] = Σ_ijk x[n, h·stride_h +
// i − pad_top, w·stride_w + j − pad_left, k] · w[i, j, k, c], zeros outside x.
// Pads may be negative.
struct NarrowInputConv {
  int64_t images, height, width, in_c;
  int64_t taps_h, taps_w, out_c;
  int64_t out_h, out_w;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left;
};

// Whether this CPU runs the functions below (they need AVX-512).
bool NarrowInputSupported();

// Strides must be 1.
void NarrowInputInputGrad(const NarrowInputConv& s, const float* dy, const float* w, float* dx);
// The result does not depend on the number of threads.
void NarrowInputKernelGrad(const NarrowInputConv& s, const float* x, const float* dy,
                           float* dw);

}  // namespace cvx

#endif  // CVX_LAYERS_ONEDNN_NARROW_INPUT_H_
