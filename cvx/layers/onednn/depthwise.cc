// Stride-1 depthwise convs, vectorised over blocks of 16 channels.
//
// In NHWC a block of 16 channels of one pixel is 64 consecutive bytes, one
// vector. The passes (d: the dilation; top, left: the pads):
//   forward  y[h, w] = Σ_ij x[h + i·d_h − top, w + j·d_w − left] ⊙ k[i, j]
//   dX       the same correlation of dy with k rotated by 180°
//   dW       dk[i, j] = Σ_n Σ_hw x[h + i·d_h − top, w + j·d_w − left] ⊙ dy[h, w]
// The forward pass (and dX) walks each channel block of an image row by row
// with the block's taps in registers: output pixels whose taps all read
// inside the input columns go in tiles of up to 8 sums, each row of input
// vectors loaded once for all taps of a kernel row; border pixels one by one,
// checking each tap. dW keeps every tap's sums for two blocks in registers
// over a chunk of images. On maps of ≤ 4 output pixels, where every pixel is
// a border pixel, both go pixel by pixel with channels innermost.
#include "depthwise.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "vectors.h"

namespace cvx {
namespace {

using vectors::InEvenBlocks;
using vectors::kLanes;
using vectors::Load;
using vectors::Store;
using vectors::SumChunks;
using vectors::Unroll;
using vectors::Vec;

// Output pixels per forward tile: 8 sums, 9 taps and a window of 10 inputs
// fill 27 of the 32 AVX-512 registers with a 3×3 kernel.
constexpr int kMaxTilePixels = 8;
// Images per dW work item; fixed, so the sum's order is too.
constexpr int64_t kChunkImages = 8;
// Output maps of at most this many pixels (all of them border pixels with a
// 3×3 kernel) go pixel by pixel with channels innermost, in every pass.
constexpr int64_t kSmallMapPixels = 4;

// out (images × out_h × out_w × channels) from in (images × in_h × in_w ×
// channels): out[h, w] sums in[h + i·step_h − top, w + j·step_w − left] ⊙
// k[i, j] over the kernel's taps, zeros outside in.
struct Correlation {
  int64_t images, in_h, in_w, channels, out_h, out_w;
  int64_t step_h, step_w, top, left;
};

Correlation ForwardCorrelation(const DepthwiseConv& s) {
  return {s.images, s.height, s.width,  s.channels, s.out_h,
          s.out_w,  s.step_h, s.step_w, s.pad_top,   s.pad_left};
}

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output columns [first, last) whose taps all read inside the input columns.
struct Span {
  int64_t first, last;
};
Span InnerColumns(const Correlation& c, int64_t taps_w) {
  const int64_t first = std::clamp<int64_t>(c.left, 0, c.out_w);
  const int64_t last = std::clamp<int64_t>(c.in_w - (taps_w - 1) * c.step_w + c.left, first,
                                           c.out_w);
  return {first, last};
}

// f(K) with K the kernel's side as a constant (3 or 5).
template <typename F>
void WithTaps(int64_t taps, F f) {
  if (taps == 3)
    f(std::integral_constant<int, 3>{});
  else
    f(std::integral_constant<int, 5>{});
}

// ------------------------------------------------------------ forward, dX
// Output pixels [w0, w0 + P) of row h, all of whose taps read inside the
// input columns; `in` and `out` point at one image's channel block.
template <int K, int P, bool kUnitStep>
inline void CorrelateTile(const Correlation& c, const float* in, const Vec* k, int64_t h,
                          int64_t w0, float* out) {
  Vec acc[P] = {};
  Unroll<K>([&](auto i) {
    const int64_t row = h + i * c.step_h - c.top;
    if (row < 0 || row >= c.in_h) return;
    const float* pixels = in + row * c.in_w * c.channels;
    if constexpr (kUnitStep) {
      Vec window[P + K - 1];
      Unroll<P + K - 1>([&](auto q) {
        window[q] = Load(pixels + (w0 - c.left + q) * c.channels);
      });
      Unroll<K>([&](auto j) {
        Unroll<P>([&](auto p) { acc[p] += window[p + j] * k[i * K + j]; });
      });
    } else {
      Unroll<K>([&](auto j) {
        Unroll<P>([&](auto p) {
          const int64_t col = w0 + p + j * c.step_w - c.left;
          acc[p] += Load(pixels + col * c.channels) * k[i * K + j];
        });
      });
    }
  });
  Unroll<P>([&](auto p) { Store(out + (h * c.out_w + w0 + p) * c.channels, acc[p]); });
}

// Taps [first, last) of a kernel row (or column) whose reads from output
// position h fall inside the input: 0 ≤ h + i·step − pad < size.
Span InsideTaps(int64_t h, int64_t step, int64_t pad, int64_t size, int64_t taps) {
  const int64_t base = h - pad;
  const int64_t first = std::clamp<int64_t>(-FloorDiv(base, step), 0, taps);
  const int64_t last = std::clamp<int64_t>(-FloorDiv(base - size, step), first, taps);
  return {first, last};
}

// Output pixel (h, w) of one channel block, checking each tap.
template <int K>
inline void CorrelateCheckedPixel(const Correlation& c, const float* in, const Vec* k, int64_t h,
                                  int64_t w, float* out) {
  Vec acc = {};
  Unroll<K>([&](auto i) {
    const int64_t row = h + i * c.step_h - c.top;
    if (row < 0 || row >= c.in_h) return;
    Unroll<K>([&](auto j) {
      const int64_t col = w + j * c.step_w - c.left;
      if (col < 0 || col >= c.in_w) return;
      acc += Load(in + (row * c.in_w + col) * c.channels) * k[i * K + j];
    });
  });
  Store(out + (h * c.out_w + w) * c.channels, acc);
}

// Output pixel (h, w) of a small map, all channels, through the taps that
// read inside the input: channels innermost, the kernel from memory.
inline void CorrelateSmallMapPixel(const Correlation& c, int64_t taps, const float* k,
                                   const float* in, int64_t h, int64_t w, float* out) {
  const Span rows = InsideTaps(h, c.step_h, c.top, c.in_h, taps);
  const Span cols = InsideTaps(w, c.step_w, c.left, c.in_w, taps);
  for (int64_t c0 = 0; c0 < c.channels; c0 += kLanes) {
    Vec acc = {};
    for (int64_t i = rows.first; i < rows.last; ++i)
      for (int64_t j = cols.first; j < cols.last; ++j) {
        const int64_t row = h + i * c.step_h - c.top;
        const int64_t col = w + j * c.step_w - c.left;
        acc += Load(in + (row * c.in_w + col) * c.channels + c0) *
               Load(k + (i * taps + j) * c.channels + c0);
      }
    Store(out + (h * c.out_w + w) * c.channels + c0, acc);
  }
}

// One image: in (in_h × in_w × channels) → out (out_h × out_w × channels),
// channel block by block with the block's taps in registers; small maps
// pixel by pixel.
template <int K>
__attribute__((target("avx512f"), flatten))
void CorrelateImage(const Correlation& c, const float* k, const float* in, float* out) {
  if (c.out_h * c.out_w <= kSmallMapPixels) {
    for (int64_t h = 0; h < c.out_h; ++h)
      for (int64_t w = 0; w < c.out_w; ++w) CorrelateSmallMapPixel(c, K, k, in, h, w, out);
    return;
  }
  const Span inner = InnerColumns(c, K);
  const bool unit_step = c.step_w == 1;
  const auto block_row = [&](int64_t c0, const Vec* taps, int64_t h) {
    const float* block_in = in + c0;
    float* block_out = out + c0;
    for (int64_t w = 0; w < inner.first; ++w)
      CorrelateCheckedPixel<K>(c, block_in, taps, h, w, block_out);
    if (inner.last > inner.first)
      InEvenBlocks<kMaxTilePixels>(inner.last - inner.first, [&](int64_t offset, auto pixels) {
        constexpr int P = decltype(pixels)::value;
        const int64_t w0 = inner.first + offset;
        if (unit_step)
          CorrelateTile<K, P, true>(c, block_in, taps, h, w0, block_out);
        else
          CorrelateTile<K, P, false>(c, block_in, taps, h, w0, block_out);
      });
    for (int64_t w = inner.last; w < c.out_w; ++w)
      CorrelateCheckedPixel<K>(c, block_in, taps, h, w, block_out);
  };
  for (int64_t c0 = 0; c0 < c.channels; c0 += kLanes) {
    Vec taps[K * K];
    Unroll<K * K>([&](auto t) { taps[t] = Load(k + t * c.channels + c0); });
    for (int64_t h = 0; h < c.out_h; ++h) block_row(c0, taps, h);
  }
}

void Correlate(const Correlation& c, int64_t taps, const float* k, const float* in, float* out) {
  WithTaps(taps, [&](auto side) {
    constexpr int K = decltype(side)::value;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < c.images; ++n)
      CorrelateImage<K>(c, k, in + n * c.in_h * c.in_w * c.channels,
                        out + n * c.out_h * c.out_w * c.channels);
  });
}

// ----------------------------------------------------------- kernel gradient
// Channel blocks per dW work item: G · K² sums in registers (18 of 32 for a
// 3×3 kernel), and 64·G consecutive bytes read per pixel.
template <int K>
constexpr int kGradBlocks = K == 3 ? 2 : 1;

// Adds output pixel (h, w)'s products into every tap's sums for G channel
// blocks; kChecked skips the taps outside the input columns.
template <int K, int G, bool kChecked>
inline void AddPixelProducts(const Correlation& c, const float* in, const float* grads,
                             int64_t h, int64_t w, Vec (&acc)[G][K * K]) {
  Vec g[G];
  Unroll<G>([&](auto b) { g[b] = Load(grads + (h * c.out_w + w) * c.channels + b * kLanes); });
  Unroll<K>([&](auto i) {
    const int64_t row = h + i * c.step_h - c.top;
    if (row < 0 || row >= c.in_h) return;
    Unroll<K>([&](auto j) {
      const int64_t col = w + j * c.step_w - c.left;
      if (kChecked && (col < 0 || col >= c.in_w)) return;
      const float* pixel = in + (row * c.in_w + col) * c.channels;
      Unroll<G>([&](auto b) { acc[b][i * K + j] += Load(pixel + b * kLanes) * g[b]; });
    });
  });
}

// The tap sums (K² × channels; G blocks' columns from c0) of images [first,
// last).
template <int K, int G>
__attribute__((target("avx512f"), flatten))
void KernelGradBlocks(const Correlation& c, const float* x, const float* dy, int64_t first,
                      int64_t last, int64_t c0, float* sums) {
  const Span inner = InnerColumns(c, K);
  Vec acc[G][K * K] = {};
  for (int64_t n = first; n < last; ++n) {
    const float* in = x + n * c.in_h * c.in_w * c.channels + c0;
    const float* grads = dy + n * c.out_h * c.out_w * c.channels + c0;
    for (int64_t h = 0; h < c.out_h; ++h) {
      for (int64_t w = 0; w < inner.first; ++w)
        AddPixelProducts<K, G, true>(c, in, grads, h, w, acc);
      for (int64_t w = inner.first; w < inner.last; ++w)
        AddPixelProducts<K, G, false>(c, in, grads, h, w, acc);
      for (int64_t w = inner.last; w < c.out_w; ++w)
        AddPixelProducts<K, G, true>(c, in, grads, h, w, acc);
    }
  }
  Unroll<G>([&](auto b) {
    Unroll<K * K>([&](auto t) { Store(sums + t * c.channels + c0 + b * kLanes, acc[b][t]); });
  });
}

// The tap sums (taps² × channels, zeroed first) of images [first, last) on
// a small map: per output pixel and tap inside, all channels in order, the
// sums in memory.
__attribute__((target("avx512f"), flatten))
void KernelGradSmallMap(const Correlation& c, int64_t taps, const float* x, const float* dy,
                        int64_t first, int64_t last, float* sums) {
  std::fill(sums, sums + taps * taps * c.channels, 0.0f);
  for (int64_t n = first; n < last; ++n)
    for (int64_t h = 0; h < c.out_h; ++h) {
      const Span rows = InsideTaps(h, c.step_h, c.top, c.in_h, taps);
      for (int64_t w = 0; w < c.out_w; ++w) {
        const Span cols = InsideTaps(w, c.step_w, c.left, c.in_w, taps);
        const float* grads = dy + ((n * c.out_h + h) * c.out_w + w) * c.channels;
        for (int64_t i = rows.first; i < rows.last; ++i)
          for (int64_t j = cols.first; j < cols.last; ++j) {
            const int64_t row = h + i * c.step_h - c.top;
            const int64_t col = w + j * c.step_w - c.left;
            const float* in = x + ((n * c.in_h + row) * c.in_w + col) * c.channels;
            float* sum = sums + (i * taps + j) * c.channels;
            for (int64_t c0 = 0; c0 < c.channels; c0 += kLanes)
              Store(sum + c0, Load(sum + c0) + Load(in + c0) * Load(grads + c0));
          }
      }
    }
}

}  // namespace

bool DepthwiseSupported(const DepthwiseConv& s) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512 && s.channels > 0 && s.channels % kLanes == 0 && s.taps_h == s.taps_w &&
         (s.taps_h == 3 || s.taps_h == 5) && s.images > 0 && s.height > 0 && s.width > 0 &&
         s.out_h > 0 && s.out_w > 0;
}

void DepthwiseForward(const DepthwiseConv& s, const float* x, const float* k, float* y) {
  Correlate(ForwardCorrelation(s), s.taps_h, k, x, y);
}

// dx[h, w] = Σ_ij dy[h + top − i·d_h, w + left − j·d_w] ⊙ k[i, j]: with i' =
// taps − 1 − i, a correlation with the rotated kernel and pads (taps − 1)·d −
// pad.
void DepthwiseInputGrad(const DepthwiseConv& s, const float* dy, const float* k, float* dx) {
  const int64_t taps = s.taps_h * s.taps_w;
  std::vector<float> rotated(taps * s.channels);
  for (int64_t t = 0; t < taps; ++t)
    std::copy(k + (taps - 1 - t) * s.channels, k + (taps - t) * s.channels,
              rotated.begin() + t * s.channels);
  const int64_t top = (s.taps_h - 1) * s.step_h - s.pad_top;
  const int64_t left = (s.taps_w - 1) * s.step_w - s.pad_left;
  const Correlation c{s.images, s.out_h,  s.out_w,  s.channels, s.height,
                      s.width,  s.step_h, s.step_w, top,        left};
  Correlate(c, s.taps_h, rotated.data(), dy, dx);
}

// Each chunk of kChunkImages images sums into its own copy of dk; the copies
// are then added in chunk order.
void DepthwiseKernelGrad(const DepthwiseConv& s, const float* x, const float* dy, float* dk) {
  const Correlation c = ForwardCorrelation(s);
  const int64_t size = s.taps_h * s.taps_w * s.channels;
  const int64_t chunks = (s.images + kChunkImages - 1) / kChunkImages;
  const int64_t blocks = s.channels / kLanes;
  // The calling thread's, reused across calls; every element is written below.
  thread_local std::vector<float> buffer;
  buffer.resize(std::max<size_t>(buffer.size(), chunks * size));
  float* sums = buffer.data();
  if (s.out_h * s.out_w <= kSmallMapPixels) {
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      KernelGradSmallMap(c, s.taps_h, x, dy, chunk * kChunkImages,
                         std::min(s.images, (chunk + 1) * kChunkImages), sums + chunk * size);
  } else {
    WithTaps(s.taps_h, [&](auto side) {
      constexpr int K = decltype(side)::value, G = kGradBlocks<K>;
      const int64_t items = (blocks + G - 1) / G;
#pragma omp parallel for collapse(2) schedule(static)
      for (int64_t chunk = 0; chunk < chunks; ++chunk)
        for (int64_t item = 0; item < items; ++item) {
          const int64_t first = chunk * kChunkImages;
          const int64_t last = std::min(s.images, first + kChunkImages);
          float* chunk_sums = sums + chunk * size;
          if (item * G + G <= blocks)
            KernelGradBlocks<K, G>(c, x, dy, first, last, item * G * kLanes, chunk_sums);
          else
            KernelGradBlocks<K, 1>(c, x, dy, first, last, item * G * kLanes, chunk_sums);
        }
    });
  }
  SumChunks(sums, chunks, size, dk);
}

}  // namespace cvx
