// Gradients of convs of images with few channels, vectorised over output
// channels.
//
// oneDNN blocks input channels by 16 lanes, so with 3 to 8 of them its
// kernel and input gradients leave most of each vector idle. Both passes
// here keep a tile of 16-lane sums over output channels in registers:
//   dW  dw[i, t, c] = Σ_n Σ_hw P[h·s_h + i, w·s_w, t] · dy[h, w, c]
//   dX  dx[h, w, k] = Σ_ij Σ_c dy[h + pad_top − i, w + pad_left − j, c] · k[i, j, k, c]
// In dW, t runs over one kernel row's taps_w · C_in floats, (j, k) in HWIO
// order, which are consecutive floats of P (x padded by pad_top and
// pad_left, copied per image) from pixel (h·s_h + i, w·s_w); each sum adds a
// broadcast float of P times a vector of dy. In dX (stride 1) each sum adds
// a vector of dy times a vector of k, and its 16 lanes are added at the end.
#include "narrow_input.h"

#include <algorithm>
#include <vector>

#include "vectors.h"

namespace cvx {
namespace {

using vectors::InEvenBlocks;
using vectors::kLanes;
using vectors::Load;
using vectors::PerThread;
using vectors::Store;
using vectors::SumChunks;
using vectors::Sum;
using vectors::Vec;
using vectors::WithBlock;

// Vector sums kept in registers by a tile (of the 32 AVX-512 registers).
constexpr int kTileSums = 24;
// Input channels handled (a constant in each instance of the dX loops).
constexpr int kMaxChannels = kNarrowInputMaxChannels;
// Output-channel vectors per tile.
constexpr int kMaxVectors = 4;
// Images per dW work item; fixed, so the sum's order is too.
constexpr int64_t kChunkImages = 8;

int64_t PaddedRows(const NarrowInputConv& s) { return (s.out_h - 1) * s.stride_h + s.taps_h; }
int64_t PaddedCols(const NarrowInputConv& s) { return (s.out_w - 1) * s.stride_w + s.taps_w; }
int64_t RowTaps(const NarrowInputConv& s) { return s.taps_w * s.in_c; }
int64_t Vectors(const NarrowInputConv& s) { return s.out_c / kLanes; }

// padded (rows × cols × channels): the image (height × width × channels)
// moved down by `top` and right by `left` (either may be negative), zeros
// elsewhere.
void PadImage(const float* image, int64_t height, int64_t width, int64_t channels, int64_t top,
              int64_t left, int64_t rows, int64_t cols, float* padded) {
  std::fill(padded, padded + rows * cols * channels, 0.0f);
  const int64_t first_row = std::max<int64_t>(0, top), last_row = std::min(rows, top + height);
  const int64_t first_col = std::clamp<int64_t>(left, 0, cols);
  const int64_t last_col = std::clamp<int64_t>(left + width, first_col, cols);
  for (int64_t r = first_row; r < last_row; ++r) {
    const float* in = image + ((r - top) * width + first_col - left) * channels;
    std::copy(in, in + (last_col - first_col) * channels,
              padded + (r * cols + first_col) * channels);
  }
}

// f(vectors, …) for the output-channel vectors in blocks of at most
// kMaxVectors, with f's second argument the constant V of each block.
template <typename F>
inline void ForVectorBlocks(const NarrowInputConv& s, F f) {
  InEvenBlocks<kMaxVectors>(Vectors(s), f);
}

// ------------------------------------------------------------ input gradient
// Pixels per dX tile; with C_in channels a tile keeps P · C_in sums.
constexpr int kMaxGradPixels = 8;

// Kernel rows i (or columns) through which output pixel h (or column) of dx
// reads dy: [first, last) with 0 ≤ h + pad − i < out.
struct TapRange {
  int64_t first, last;
};
TapRange ReadingTaps(int64_t h, int64_t pad, int64_t taps, int64_t out) {
  return {std::max<int64_t>(0, h + pad - out + 1), std::min(taps, h + pad + 1)};
}

// dx pixels [w0, w0 + P) of row h, all C channels, through kernel rows `rows`
// and columns `cols` (which all P pixels read within dy).
template <int P, int C>
void InputGradTile(const NarrowInputConv& s, const float* dy, const float* w, int64_t h,
                   int64_t w0, TapRange rows, TapRange cols, float* dx) {
  Vec acc[P][C] = {};
  for (int64_t i = rows.first; i < rows.last; ++i)
    for (int64_t j = cols.first; j < cols.last; ++j) {
      const float* d = dy + ((h + s.pad_top - i) * s.out_w + w0 + s.pad_left - j) * s.out_c;
      const float* taps = w + (i * s.taps_w + j) * C * s.out_c;
      for (int64_t v = 0; v < s.out_c; v += kLanes) {
        Vec k[C];
        for (int c = 0; c < C; ++c) k[c] = Load(taps + c * s.out_c + v);
        for (int p = 0; p < P; ++p) {
          const Vec g = Load(d + p * s.out_c + v);
          for (int c = 0; c < C; ++c) acc[p][c] += g * k[c];
        }
      }
    }
  for (int p = 0; p < P; ++p)
    for (int c = 0; c < C; ++c) dx[(h * s.width + w0 + p) * C + c] = Sum(acc[p][c]);
}

// One image's dx. Pixels that read dy through every kernel column go in
// tiles; the others one by one, through the columns they read.
__attribute__((target("avx512f"), flatten))
void InputGradImage(const NarrowInputConv& s, const float* dy, const float* w, float* dx) {
  const int64_t first_inner = std::clamp<int64_t>(s.taps_w - 1 - s.pad_left, 0, s.width);
  const int64_t last_inner = std::clamp<int64_t>(s.out_w - s.pad_left, first_inner, s.width);
  WithBlock<kMaxChannels>(s.in_c, [&](auto channels) {
    constexpr int C = decltype(channels)::value;
    for (int64_t h = 0; h < s.height; ++h) {
      const TapRange rows = ReadingTaps(h, s.pad_top, s.taps_h, s.out_h);
      const auto one_pixel = [&](int64_t w0) {
        InputGradTile<1, C>(s, dy, w, h, w0, rows,
                            ReadingTaps(w0, s.pad_left, s.taps_w, s.out_w), dx);
      };
      for (int64_t w0 = 0; w0 < first_inner; ++w0) one_pixel(w0);
      if (last_inner > first_inner)
        InEvenBlocks<std::min(kMaxGradPixels, kTileSums / C)>(
            last_inner - first_inner, [&](int64_t offset, auto pixels) {
              InputGradTile<decltype(pixels)::value, C>(s, dy, w, h, first_inner + offset, rows,
                                                        {0, s.taps_w}, dx);
            });
      for (int64_t w0 = last_inner; w0 < s.width; ++w0) one_pixel(w0);
    }
  });
}

// ----------------------------------------------------------- kernel gradient
// Taps [t0, t0 + T) of kernel row i × channel vectors [v0, v0 + V), summed
// over one image's output pixels and added into sums (taps_h × row taps ×
// out_c, HWIO order).
template <int T, int V>
void KernelGradTile(const NarrowInputConv& s, const float* padded, const float* dy, int64_t i,
                    int64_t t0, int64_t v0, float* sums) {
  const int64_t cols = PaddedCols(s), step = s.stride_w * s.in_c;
  Vec acc[T][V] = {};
  for (int64_t h = 0; h < s.out_h; ++h) {
    const float* row = padded + (h * s.stride_h + i) * cols * s.in_c + t0;
    const float* grads = dy + h * s.out_w * s.out_c + v0 * kLanes;
    for (int64_t w = 0; w < s.out_w; ++w) {
      Vec g[V];
      for (int v = 0; v < V; ++v) g[v] = Load(grads + w * s.out_c + v * kLanes);
#pragma GCC unroll 32  // past GCC's default of 16 iterations, or acc spills
      for (int t = 0; t < T; ++t) {
        const float pixel = row[w * step + t];
        for (int v = 0; v < V; ++v) acc[t][v] += pixel * g[v];
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int v = 0; v < V; ++v) {
      float* sum = sums + (i * RowTaps(s) + t0 + t) * s.out_c + (v0 + v) * kLanes;
      Store(sum, Load(sum) + acc[t][v]);
    }
}

__attribute__((target("avx512f"), flatten))
void KernelGradImage(const NarrowInputConv& s, const float* x, const float* dy, float* padded,
                     float* sums) {
  PadImage(x, s.height, s.width, s.in_c, s.pad_top, s.pad_left, PaddedRows(s), PaddedCols(s),
           padded);
  ForVectorBlocks(s, [&](int64_t v0, auto vectors) {
    constexpr int V = decltype(vectors)::value;
    for (int64_t i = 0; i < s.taps_h; ++i)
      InEvenBlocks<kTileSums / V>(RowTaps(s), [&](int64_t t0, auto taps) {
        KernelGradTile<decltype(taps)::value, V>(s, padded, dy, i, t0, v0, sums);
      });
  });
}

}  // namespace

bool NarrowInputSupported() { return __builtin_cpu_supports("avx512f"); }

void NarrowInputInputGrad(const NarrowInputConv& s, const float* dy, const float* w,
                          float* dx) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.images; ++n)
    InputGradImage(s, dy + n * s.out_h * s.out_w * s.out_c, w,
                   dx + n * s.height * s.width * s.in_c);
}

// Each chunk of kChunkImages images sums into its own copy of dw; the copies
// are then added in chunk order.
void NarrowInputKernelGrad(const NarrowInputConv& s, const float* x, const float* dy,
                           float* dw) {
  const int64_t taps = s.taps_h * RowTaps(s) * s.out_c;
  const int64_t chunks = (s.images + kChunkImages - 1) / kChunkImages;
  std::vector<float> sums(chunks * taps, 0.0f);
  PerThread<float> padded(PaddedRows(s) * PaddedCols(s) * s.in_c);
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t last = std::min(s.images, (chunk + 1) * kChunkImages);
    for (int64_t n = chunk * kChunkImages; n < last; ++n)
      KernelGradImage(s, x + n * s.height * s.width * s.in_c,
                      dy + n * s.out_h * s.out_w * s.out_c, padded.Mine(),
                      sums.data() + chunk * taps);
  }
  SumChunks(sums.data(), chunks, taps, dw);
}

}  // namespace cvx
