// An 8-bit separable filter with integer taps as an XLA FFI handler on CPU:
// cvx.ops.gaussian_blur's fixed-point Gaussian, bit-exact with OpenCV's.
//   CvxSeparableU8 (x, rows, cols, ky, kx) -> y;  attrs left, bias, shift
// x and y are images × H × W × C uint8 (any leading dims count as images);
// rows (H + kh − 1) and cols (W + kw − 1) are int32 maps from padded to
// source rows and columns (−1: a zero), as np.pad of an arange makes them
// for a border mode, with the image `left` columns into the padded row; ky
// and kx are non-negative int32 taps with 255·Σky·Σkx + bias < 2³²:
//   y[h, w, c] = uint8((Σ_i ky[i] Σ_j kx[j] x[rows[h + i], cols[w + j], c] + bias) >> shift)
// Integer sums are exact, so columns are summed first, over whole rows of
// W·C values, then rows; each output row in uint32 vectors.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Filter {
  int64_t height, width, channels;
  const int32_t *rows, *cols, *ky, *kx;
  int64_t kh, kw, left;
  uint32_t bias;
  int shift;
};

// The rows an output row h reads (a row of zeros for a −1 in the map).
template <int KH>
void SourceRows(const Filter& f, const uint8_t* image, int64_t h, const uint8_t* zeros,
                const uint8_t* (&rows)[KH]) {
  for (int i = 0; i < KH; ++i)
    rows[i] = f.rows[h + i] < 0 ? zeros : image + f.rows[h + i] * f.width * f.channels;
}

// Pixels [first, last) of a row read inside it through every kx tap.
struct Inner {
  int64_t first, last;
};
Inner InnerPixels(const Filter& f) {
  const int64_t first = std::min<int64_t>(f.left, f.width);
  return {first, std::max(first, f.width - (f.kw - 1 - f.left))};
}

// Output pixel w of a row from its column sums, through the column map.
template <typename T>
void ThroughMap(const Filter& f, const T* sums, int64_t w, uint8_t* out) {
  for (int64_t ch = 0; ch < f.channels; ++ch) {
    uint32_t total = f.bias;
    for (int64_t j = 0; j < f.kw; ++j) {
      const int32_t source = f.cols[w + j];
      if (source >= 0) total += static_cast<uint32_t>(f.kx[j]) * sums[source * f.channels + ch];
    }
    out[w * f.channels + ch] = static_cast<uint8_t>(total >> f.shift);
  }
}

// Output row h of one image (height × width × channels) into out, with a
// KH × KW kernel summed in T (which must hold 255·Σky·Σkx + bias); `sums`
// holds width · channels values, `zeros` as many zero bytes. The tap loops
// are unrolled, so the compiler vectorises the loops over the row.
template <typename T, int KH, int KW>
inline void FilterRowFixed(const Filter& f, const uint8_t* image, int64_t h,
                           const uint8_t* zeros, T* __restrict sums, uint8_t* __restrict out) {
  const int64_t row = f.width * f.channels, c = f.channels;
  const uint8_t* rows[KH];
  SourceRows<KH>(f, image, h, zeros, rows);
  T ky[KH], kx[KW];
  for (int i = 0; i < KH; ++i) ky[i] = static_cast<T>(f.ky[i]);
  for (int j = 0; j < KW; ++j) kx[j] = static_cast<T>(f.kx[j]);
  for (int64_t k = 0; k < row; ++k) {
    T sum = 0;
    for (int i = 0; i < KH; ++i) sum += ky[i] * rows[i][k];
    sums[k] = sum;
  }
  const Inner inner = InnerPixels(f);
  const T bias = static_cast<T>(f.bias);
  for (int64_t k = inner.first * c; k < inner.last * c; ++k) {
    T total = bias;
    for (int j = 0; j < KW; ++j) total += kx[j] * sums[k + (j - f.left) * c];
    out[k] = static_cast<uint8_t>(total >> f.shift);
  }
  for (int64_t w = 0; w < inner.first; ++w) ThroughMap(f, sums, w, out);
  for (int64_t w = inner.last; w < f.width; ++w) ThroughMap(f, sums, w, out);
}

// Any kernel, in uint32, a pass over the row per tap.
inline void FilterRowAny(const Filter& f, const uint8_t* image, int64_t h,
                         uint32_t* __restrict sums, uint32_t* __restrict totals,
                         uint8_t* __restrict out) {
  const int64_t row = f.width * f.channels, c = f.channels;
  std::fill(sums, sums + row, 0u);
  for (int64_t i = 0; i < f.kh; ++i) {
    const int32_t source = f.rows[h + i];
    if (source < 0) continue;
    const uint8_t* __restrict in = image + source * row;
    const uint32_t tap = static_cast<uint32_t>(f.ky[i]);
    for (int64_t k = 0; k < row; ++k) sums[k] += tap * in[k];
  }
  const Inner inner = InnerPixels(f);
  const int64_t begin = inner.first * c, end = inner.last * c;
  std::fill(totals + begin, totals + end, f.bias);
  for (int64_t j = 0; j < f.kw; ++j) {
    const uint32_t tap = static_cast<uint32_t>(f.kx[j]);
    const uint32_t* __restrict shifted = sums + (j - f.left) * c;
    for (int64_t k = begin; k < end; ++k) totals[k] += tap * shifted[k];
  }
  for (int64_t k = begin; k < end; ++k) out[k] = static_cast<uint8_t>(totals[k] >> f.shift);
  for (int64_t w = 0; w < inner.first; ++w) ThroughMap(f, sums, w, out);
  for (int64_t w = inner.last; w < f.width; ++w) ThroughMap(f, sums, w, out);
}

// Whether the filter's sums fit in 16 bits.
bool Fits16(const Filter& f) {
  uint64_t sy = 0, sx = 0;
  for (int64_t i = 0; i < f.kh; ++i) sy += static_cast<uint64_t>(f.ky[i]);
  for (int64_t j = 0; j < f.kw; ++j) sx += static_cast<uint64_t>(f.kx[j]);
  return 255 * sy * sx + f.bias < (1u << 16);
}

// Output row h; `scratch` holds 2 · width · channels uint32 values and
// `zeros` width · channels zero bytes. Square 3×3, 5×5 and 7×7 kernels take
// the unrolled loops (in 16 bits where the sums fit), others FilterRowAny.
template <int K>
inline bool FilterRowSquare(const Filter& f, const uint8_t* image, int64_t h,
                            const uint8_t* zeros, uint32_t* scratch, uint8_t* out) {
  if (f.kh != K || f.kw != K) return false;
  if (Fits16(f))
    FilterRowFixed<uint16_t, K, K>(f, image, h, zeros, reinterpret_cast<uint16_t*>(scratch),
                                   out);
  else
    FilterRowFixed<uint32_t, K, K>(f, image, h, zeros, scratch, out);
  return true;
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"), flatten))
void FilterRow(const Filter& f, const uint8_t* image, int64_t h, const uint8_t* zeros,
               uint32_t* scratch, uint8_t* out) {
  if (FilterRowSquare<3>(f, image, h, zeros, scratch, out) ||
      FilterRowSquare<5>(f, image, h, zeros, scratch, out) ||
      FilterRowSquare<7>(f, image, h, zeros, scratch, out))
    return;
  FilterRowAny(f, image, h, scratch, scratch + f.width * f.channels, out);
}

ffi::Error SeparableU8(ffi::Buffer<ffi::U8> x, ffi::Buffer<ffi::S32> rows,
                       ffi::Buffer<ffi::S32> cols, ffi::Buffer<ffi::S32> ky,
                       ffi::Buffer<ffi::S32> kx, ffi::ResultBuffer<ffi::U8> y, int64_t left,
                       int64_t bias, int64_t shift) {
  const auto dims = x.dimensions();
  if (dims.size() < 3) return ffi::Error::InvalidArgument("CvxSeparableU8: x needs H, W, C");
  const int64_t n = dims.size();
  const Filter f{dims[n - 3], dims[n - 2], dims[n - 1], rows.typed_data(), cols.typed_data(),
                 ky.typed_data(), kx.typed_data(), static_cast<int64_t>(ky.element_count()),
                 static_cast<int64_t>(kx.element_count()), left, static_cast<uint32_t>(bias),
                 static_cast<int>(shift)};
  const int64_t image_size = f.height * f.width * f.channels;
  const int64_t images = image_size == 0 ? 0 : static_cast<int64_t>(x.element_count()) / image_size;
  const int64_t rows_total = images * f.height;
  const int64_t row = f.width * f.channels;
  std::vector<uint32_t> scratch(omp_get_max_threads() * 2 * row);
  const std::vector<uint8_t> zeros(row, 0);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows_total; ++r) {
    const int64_t image = r / f.height, h = r % f.height;
    FilterRow(f, x.typed_data() + image * image_size, h, zeros.data(),
              scratch.data() + omp_get_thread_num() * 2 * row,
              y->typed_data() + image * image_size + h * row);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(CvxSeparableU8, SeparableU8,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("left")
                                  .Attr<int64_t>("bias")
                                  .Attr<int64_t>("shift"));
