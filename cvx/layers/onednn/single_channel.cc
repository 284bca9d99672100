// Stride-1 convs of single-channel images, vectorised along image rows.
//
// oneDNN's direct kernels vectorise over channels, so with one input channel
// and a few outputs (LeNet-5's 28×28×1 → 6, 5×5) most of each vector idles.
// Here every pass takes 16 neighbouring pixels of a row per vector, read
// from zero-padded planes that each image builds in cache:
//   forward  y[h, w, c]  = Σ_ij P[h + i, w + j] · k[i, j, c]
//   dX       dx[h, w]    = Σ_c Σ_ij D_c[h + i, w + j] · k[kh − 1 − i, kw − 1 − j, c]
//   dW       dw[i, j, c] = Σ_n Σ_hw P[h + i, w + j] · dy[h, w, c]
// P is the image padded by (pad_top, pad_left), D_c dy's channel c padded by
// (kh − 1 − pad_top, kw − 1 − pad_left). Each pass's per-image work is one
// AVX-512 function with the channel- and tap-blocked loops below inlined
// ("flatten") into it. Built for AVX2, the same 16-lane loops ran at 9–19
// GFLOP/s against 82–128 (LeNet-5's first conv), below oneDNN's AVX2
// kernels, so other CPUs keep oneDNN (SingleChannelSupported).
#include "single_channel.h"

#include <algorithm>
#include <vector>

#include "vectors.h"

namespace cvx {
namespace {

using vectors::InBlocks;
using vectors::kLanes;
using vectors::Load;
using vectors::PerThread;
using vectors::RoundUp;
using vectors::Store;
using vectors::Vec;
using vectors::WithBlock;

// Output channels kept in registers at once by the forward pass.
constexpr int kMaxBlock = 8;
// Taps of a kernel row and channels whose dW sums stay in registers at once.
constexpr int kGradTaps = 5;
constexpr int kGradChannels = 4;
// Rows and 16-pixel vectors of dx computed at once, sharing each weight.
constexpr int kInputGradRows = 4;
constexpr int kInputGradVectors = 2;
// Channel counts whose planes are copied by a loop specialised to each.
constexpr int kMaxDeinterleaved = 16;
// Images per dW work item; fixed, so the sum's order is too.
constexpr int64_t kChunkImages = 8;

// The channel planes of interleaved pixels: for rows × pixels pixels of
// `channels` floats (rows `in_step` floats apart), out[c · plane_step + r ·
// row_step + w] = in[r · in_step + w · channels + c]. With C > 0 the count is
// the constant C and the compiler vectorises the strided reads (~0.5 cycles
// a float; a loop over a run-time count, C = 0, costs ~1.5, as much as the
// convolution's multiplies, and two-source permutes with run-time tables
// were slower still).
template <int C>
void DeinterleaveChannels(const float* __restrict in, int64_t rows, int64_t pixels,
                          int64_t in_step, int64_t channels, float* __restrict out,
                          int64_t row_step, int64_t plane_step) {
  const int64_t count = C > 0 ? C : channels;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < count; ++c)
      for (int64_t w = 0; w < pixels; ++w)
        out[c * plane_step + r * row_step + w] = in[r * in_step + w * count + c];
}

void Deinterleave(const float* in, int64_t rows, int64_t pixels, int64_t in_step,
                  int64_t channels, float* out, int64_t row_step, int64_t plane_step) {
  if (channels > kMaxDeinterleaved) {
    DeinterleaveChannels<0>(in, rows, pixels, in_step, channels, out, row_step, plane_step);
    return;
  }
  WithBlock<kMaxDeinterleaved>(channels, [&](auto count) {
    DeinterleaveChannels<decltype(count)::value>(in, rows, pixels, in_step, channels, out,
                                                 row_step, plane_step);
  });
}

// planes (channels planes of rows × cols): the image's channels (height ×
// width × channels, interleaved) moved down by `top` and right by `left`
// (either may be negative), zeros elsewhere.
void PadPlanes(const float* image, int64_t height, int64_t width, int64_t channels,
               int64_t top, int64_t left, int64_t rows, int64_t cols, float* planes) {
  std::fill(planes, planes + channels * rows * cols, 0.0f);
  const int64_t first_row = std::max<int64_t>(0, top), last_row = std::min(rows, top + height);
  const int64_t first_col = std::clamp<int64_t>(left, 0, cols);
  const int64_t last_col = std::clamp<int64_t>(left + width, first_col, cols);
  if (first_row >= last_row || first_col >= last_col) return;
  const float* in = image + ((first_row - top) * width + first_col - left) * channels;
  float* out = planes + first_row * cols + first_col;
  Deinterleave(in, last_row - first_row, last_col - first_col, width * channels, channels, out,
               cols, rows * cols);
}

// ------------------------------------------------------------------ forward
int64_t ForwardRows(const SingleChannelConv& s) { return s.out_h + s.taps_h - 1; }
int64_t ForwardCols(const SingleChannelConv& s) { return RoundUp(s.out_w) + s.taps_w - 1; }

// Output channels [c0, c0 + B) of one image from its padded plane. (Rows
// in blocks sharing each weight were slower: this pass is not bound by loads.)
template <int B>
void ForwardChannels(const SingleChannelConv& s, const float* plane, const float* w, int64_t c0,
                     float* y) {
  const int64_t cols = ForwardCols(s);
  for (int64_t h = 0; h < s.out_h; ++h)
    for (int64_t w0 = 0; w0 < s.out_w; w0 += kLanes) {
      Vec acc[B] = {};
      for (int64_t i = 0; i < s.taps_h; ++i) {
        const float* row = plane + (h + i) * cols + w0;
        const float* taps = w + i * s.taps_w * s.out_c + c0;
        for (int64_t j = 0; j < s.taps_w; ++j) {
          const Vec pixels = Load(row + j);
          for (int b = 0; b < B; ++b) acc[b] += pixels * taps[j * s.out_c + b];
        }
      }
      float tile[B][kLanes];
      for (int b = 0; b < B; ++b) Store(tile[b], acc[b]);
      float* out = y + (h * s.out_w + w0) * s.out_c + c0;
      const int64_t pixels = std::min(kLanes, s.out_w - w0);
      if (B == s.out_c && pixels == kLanes) {  // 16 whole pixels: contiguous
        for (int64_t l = 0; l < kLanes; ++l)
          for (int b = 0; b < B; ++b) out[l * B + b] = tile[b][l];
      } else {
        for (int64_t l = 0; l < pixels; ++l)
          for (int b = 0; b < B; ++b) out[l * s.out_c + b] = tile[b][l];
      }
    }
}

__attribute__((target("avx512f"), flatten))
void ForwardImage(const SingleChannelConv& s, const float* x, const float* w, float* plane,
                  float* y) {
  PadPlanes(x, s.height, s.width, 1, s.pad_top, s.pad_left, ForwardRows(s), ForwardCols(s),
            plane);
  InBlocks<kMaxBlock>(s.out_c, [&](int64_t c0, auto channels) {
    ForwardChannels<decltype(channels)::value>(s, plane, w, c0, y);
  });
}

// ------------------------------------------------------------ input gradient
int64_t InputGradRows(const SingleChannelConv& s) { return s.height + s.taps_h - 1; }
int64_t InputGradCols(const SingleChannelConv& s) { return RoundUp(s.width) + s.taps_w - 1; }

// dx rows [h0, h0 + R) × vectors [v0, v0 + V) of one image from dy's padded
// planes and the flipped kernel (out_c × taps_h × taps_w); each weight
// serves R · V accumulators.
template <int R, int V>
void InputGradBlock(const SingleChannelConv& s, const float* planes, const float* flipped,
                    int64_t h0, int64_t v0, float* dx) {
  const int64_t rows = InputGradRows(s), cols = InputGradCols(s);
  Vec acc[R][V] = {};
  for (int64_t c = 0; c < s.out_c; ++c)
    for (int64_t i = 0; i < s.taps_h; ++i) {
      const float* row = planes + (c * rows + h0 + i) * cols + v0 * kLanes;
      const float* taps = flipped + (c * s.taps_h + i) * s.taps_w;
      for (int64_t j = 0; j < s.taps_w; ++j)
        for (int r = 0; r < R; ++r)
          for (int v = 0; v < V; ++v) acc[r][v] += Load(row + r * cols + v * kLanes + j) * taps[j];
    }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) {
      const int64_t w0 = (v0 + v) * kLanes, pixels = std::min(kLanes, s.width - w0);
      for (int64_t l = 0; l < pixels; ++l) dx[(h0 + r) * s.width + w0 + l] = acc[r][v][l];
    }
}

__attribute__((target("avx512f"), flatten))
void InputGradImage(const SingleChannelConv& s, const float* dy, const float* flipped,
                    float* planes, float* dx) {
  PadPlanes(dy, s.out_h, s.out_w, s.out_c, s.taps_h - 1 - s.pad_top, s.taps_w - 1 - s.pad_left,
            InputGradRows(s), InputGradCols(s), planes);
  InBlocks<kInputGradRows>(s.height, [&](int64_t h0, auto rows) {
    InBlocks<kInputGradVectors>(RoundUp(s.width) / kLanes, [&](int64_t v0, auto vectors) {
      InputGradBlock<decltype(rows)::value, decltype(vectors)::value>(s, planes, flipped, h0, v0,
                                                                     dx);
    });
  });
}

// ----------------------------------------------------------- kernel gradient
int64_t GradCols(const SingleChannelConv& s) { return RoundUp(s.out_w); }

// Taps (i, j0 … j0 + J) of channels c0 … c0 + C, summed over one image into
// sums (taps × out_c vectors of kLanes floats, the lanes added later); each
// loaded pixel vector serves C channels, each gradient vector J taps.
template <int J, int C>
void KernelGradTaps(const SingleChannelConv& s, const float* plane, const float* grads,
                    int64_t i, int64_t j0, int64_t c0, float* sums) {
  const int64_t cols = ForwardCols(s), grad_cols = GradCols(s), grad_plane = s.out_h * grad_cols;
  Vec acc[C][J] = {};
  for (int64_t h = 0; h < s.out_h; ++h) {
    const float* row = plane + (h + i) * cols + j0;
    const float* grad = grads + c0 * grad_plane + h * grad_cols;
    for (int64_t w0 = 0; w0 < grad_cols; w0 += kLanes) {
      Vec pixels[J];
      for (int j = 0; j < J; ++j) pixels[j] = Load(row + w0 + j);
      for (int c = 0; c < C; ++c) {
        const Vec g = Load(grad + c * grad_plane + w0);
        for (int j = 0; j < J; ++j) acc[c][j] += pixels[j] * g;
      }
    }
  }
  for (int c = 0; c < C; ++c)
    for (int j = 0; j < J; ++j) {
      float* sum = sums + ((i * s.taps_w + j0 + j) * s.out_c + c0 + c) * kLanes;
      Store(sum, Load(sum) + acc[c][j]);
    }
}

// Adds one image's products into sums. dy's channel planes have zeros past
// out_w, so the lanes past the row's end add nothing.
__attribute__((target("avx512f"), flatten))
void KernelGradImage(const SingleChannelConv& s, const float* x, const float* dy, float* plane,
                     float* grads, float* sums) {
  PadPlanes(x, s.height, s.width, 1, s.pad_top, s.pad_left, ForwardRows(s), ForwardCols(s),
            plane);
  PadPlanes(dy, s.out_h, s.out_w, s.out_c, 0, 0, s.out_h, GradCols(s), grads);
  for (int64_t i = 0; i < s.taps_h; ++i)
    InBlocks<kGradTaps>(s.taps_w, [&](int64_t j0, auto taps) {
      InBlocks<kGradChannels>(s.out_c, [&](int64_t c0, auto channels) {
        KernelGradTaps<decltype(taps)::value, decltype(channels)::value>(s, plane, grads, i, j0,
                                                                         c0, sums);
      });
    });
}

}  // namespace

bool SingleChannelSupported() { return __builtin_cpu_supports("avx512f"); }

void SingleChannelForward(const SingleChannelConv& s, const float* x, const float* w, float* y) {
  PerThread<float> planes(ForwardRows(s) * ForwardCols(s));
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.images; ++n)
    ForwardImage(s, x + n * s.height * s.width, w, planes.Mine(),
                 y + n * s.out_h * s.out_w * s.out_c);
}

void SingleChannelInputGrad(const SingleChannelConv& s, const float* dy, const float* w,
                            float* dx) {
  std::vector<float> flipped(s.out_c * s.taps_h * s.taps_w);  // c × i × j of k[-i, -j, c]
  for (int64_t c = 0; c < s.out_c; ++c)
    for (int64_t i = 0; i < s.taps_h; ++i)
      for (int64_t j = 0; j < s.taps_w; ++j)
        flipped[(c * s.taps_h + i) * s.taps_w + j] =
            w[((s.taps_h - 1 - i) * s.taps_w + s.taps_w - 1 - j) * s.out_c + c];
  PerThread<float> planes(s.out_c * InputGradRows(s) * InputGradCols(s));
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.images; ++n)
    InputGradImage(s, dy + n * s.out_h * s.out_w * s.out_c, flipped.data(), planes.Mine(),
                   dx + n * s.height * s.width);
}

// Each chunk of kChunkImages images sums into its own vectors; the chunks'
// lanes are then added in chunk order.
void SingleChannelKernelGrad(const SingleChannelConv& s, const float* x, const float* dy,
                             float* dw) {
  const int64_t taps = s.taps_h * s.taps_w * s.out_c;
  const int64_t chunks = (s.images + kChunkImages - 1) / kChunkImages;
  std::vector<float> sums(chunks * taps * kLanes, 0.0f);
  PerThread<float> planes(ForwardRows(s) * ForwardCols(s) + s.out_c * s.out_h * GradCols(s));
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    float* plane = planes.Mine();
    float* grads = plane + ForwardRows(s) * ForwardCols(s);
    const int64_t last = std::min(s.images, (chunk + 1) * kChunkImages);
    for (int64_t n = chunk * kChunkImages; n < last; ++n)
      KernelGradImage(s, x + n * s.height * s.width, dy + n * s.out_h * s.out_w * s.out_c,
                      plane, grads, sums.data() + chunk * taps * kLanes);
  }
  std::fill(dw, dw + taps, 0.0f);
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t l = 0; l < kLanes; ++l) dw[t] += sums[(chunk * taps + t) * kLanes + l];
}

}  // namespace cvx
