// 8-bit separable filters with integer taps as XLA FFI handlers on CPU:
// cvx.ops.gaussian_blur's fixed-point Gaussian (bit-exact with OpenCV's) and
// the float32 and int16 Sobel and Scharr derivatives of uint8 images, and the
// erosion and dilation of cvx.ops.erode / dilate by rectangles.
//   CvxSeparableU8    (x, rows, cols, ky, kx) -> uint8 y;  attrs left, bias, shift
//       y = uint8((S + bias) >> shift), taps ≥ 0, 255·Σky·Σkx + bias < 2³²
//   CvxSeparableU8F32 (x, rows, cols, ky, kx) -> float32 y;  attr left
//       y = float32(S), signed taps, 255·Σ|ky|·Σ|kx| < 2³¹
//   CvxSeparableU8I16 (x, rows, cols, ky, kx) -> int16 y;  attr left
//       y = int16(S), signed taps, 255·Σ|ky|·Σ|kx| < 2¹⁵
//   CvxExtremeU8      (x, rows, cols) -> uint8 y;  attrs kh, kw, left, fill, use_max
//       y = min (or max) of x[rows[h + i], cols[w + j], c] over i < kh, j < kw,
//       `fill` where a map reads −1
// with S[h, w, c] = Σ_i ky[i] Σ_j kx[j] x[rows[h + i], cols[w + j], c]. x and
// y are images × H × W × C (any leading dims count as images); rows (H + kh
// − 1) and cols (W + kw − 1) are int32 maps from padded to source rows and
// columns (−1: a zero), as np.pad of an arange makes them for a border mode,
// with the image `left` columns into the padded row. Integer sums are exact,
// so columns are summed first, over whole rows of W·C values, then rows. The
// sums run modulo 2¹⁶ where the result's range fits 16 bits (then read as
// signed for float32 and int16), else modulo 2³².
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "vectors.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using cvx::vectors::PerThread;

namespace {

struct Filter {
  int64_t height, width, channels;
  const int32_t *rows, *cols, *ky, *kx;
  int64_t kh, kw, left;
  uint32_t bias;
  int shift;
};

// f's height, width and channels from x's dims (images × H × W × C, any
// leading dims counting as images); returns the number of images, or −1
// where x has fewer than three dims.
template <typename Buffer>
int64_t ReadImageShape(const Buffer& x, Filter& f) {
  const auto dims = x.dimensions();
  const int64_t n = dims.size();
  if (n < 3) return -1;
  f.height = dims[n - 3], f.width = dims[n - 2], f.channels = dims[n - 1];
  const int64_t image_size = f.height * f.width * f.channels;
  return image_size == 0 ? 0 : static_cast<int64_t>(x.element_count()) / image_size;
}

// row_fn(image, h) for every row h of every image, the rows split over the
// OpenMP threads.
template <typename RowFn>
void ForEachRow(int64_t images, int64_t height, RowFn row_fn) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < images * height; ++r) row_fn(r / height, r % height);
}

// One output value from its sum (bias included), in T's modular arithmetic.
template <typename T>
inline void Finish(const Filter& f, T total, uint8_t* out) {
  *out = static_cast<uint8_t>(total >> f.shift);
}
template <typename T>
inline void Finish(const Filter&, T total, float* out) {
  *out = static_cast<float>(static_cast<std::make_signed_t<T>>(total));
}
template <typename T>
inline void Finish(const Filter&, T total, int16_t* out) {
  *out = static_cast<int16_t>(static_cast<std::make_signed_t<T>>(total));
}

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
template <typename T, typename Out>
void ThroughMap(const Filter& f, const T* sums, int64_t w, Out* out) {
  for (int64_t ch = 0; ch < f.channels; ++ch) {
    T total = static_cast<T>(f.bias);
    for (int64_t j = 0; j < f.kw; ++j) {
      const int32_t source = f.cols[w + j];
      if (source >= 0) total += static_cast<T>(f.kx[j]) * sums[source * f.channels + ch];
    }
    Finish(f, total, out + w * f.channels + ch);
  }
}

// Output row h of one image (height × width × channels) into out, with a
// KH × KW kernel summed in T; `sums` holds width · channels values, `zeros`
// as many zero bytes. The tap loops are unrolled, so the compiler
// vectorises the loops over the row.
template <typename T, int KH, int KW, typename Out>
inline void FilterRowFixed(const Filter& f, const uint8_t* image, int64_t h,
                           const uint8_t* zeros, T* __restrict sums, Out* __restrict out) {
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
    Finish(f, total, out + k);
  }
  for (int64_t w = 0; w < inner.first; ++w) ThroughMap(f, sums, w, out);
  for (int64_t w = inner.last; w < f.width; ++w) ThroughMap(f, sums, w, out);
}

// Any kernel, modulo 2³², a pass over the row per tap.
template <typename Out>
inline void FilterRowAny(const Filter& f, const uint8_t* image, int64_t h,
                         uint32_t* __restrict sums, uint32_t* __restrict totals,
                         Out* __restrict out) {
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
  for (int64_t k = begin; k < end; ++k) Finish(f, totals[k], out + k);
  for (int64_t w = 0; w < inner.first; ++w) ThroughMap(f, sums, w, out);
  for (int64_t w = inner.last; w < f.width; ++w) ThroughMap(f, sums, w, out);
}

// Whether the results' range fits 16 bits: [0, 2¹⁶) for uint8 outputs,
// [−2¹⁵, 2¹⁵) for signed ones.
template <typename Out>
bool Fits16(const Filter& f) {
  int64_t sy = 0, sx = 0;
  for (int64_t i = 0; i < f.kh; ++i) sy += std::abs(f.ky[i]);
  for (int64_t j = 0; j < f.kw; ++j) sx += std::abs(f.kx[j]);
  const int64_t bits = std::is_same_v<Out, uint8_t> ? 16 : 15;
  return 255 * sy * sx + f.bias < (int64_t{1} << bits);
}

// Output row h; `scratch` holds 2 · width · channels uint32 values and
// `zeros` width · channels zero bytes. Square 3×3, 5×5 and 7×7 kernels take
// the unrolled loops (modulo 2¹⁶ where the results fit), others FilterRowAny.
template <int K, typename Out>
inline bool FilterRowSquare(const Filter& f, const uint8_t* image, int64_t h,
                            const uint8_t* zeros, uint32_t* scratch, Out* out) {
  if (f.kh != K || f.kw != K) return false;
  if (Fits16<Out>(f))
    FilterRowFixed<uint16_t, K, K>(f, image, h, zeros, reinterpret_cast<uint16_t*>(scratch),
                                   out);
  else
    FilterRowFixed<uint32_t, K, K>(f, image, h, zeros, scratch, out);
  return true;
}

template <typename Out>
inline void FilterRowOf(const Filter& f, const uint8_t* image, int64_t h, const uint8_t* zeros,
                        uint32_t* scratch, Out* out) {
  if (FilterRowSquare<3>(f, image, h, zeros, scratch, out) ||
      FilterRowSquare<5>(f, image, h, zeros, scratch, out) ||
      FilterRowSquare<7>(f, image, h, zeros, scratch, out))
    return;
  FilterRowAny(f, image, h, scratch, scratch + f.width * f.channels, out);
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"), flatten))
void FilterRow(const Filter& f, const uint8_t* image, int64_t h, const uint8_t* zeros,
               uint32_t* scratch, uint8_t* out) {
  FilterRowOf(f, image, h, zeros, scratch, out);
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"), flatten))
void FilterRow(const Filter& f, const uint8_t* image, int64_t h, const uint8_t* zeros,
               uint32_t* scratch, float* out) {
  FilterRowOf(f, image, h, zeros, scratch, out);
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"), flatten))
void FilterRow(const Filter& f, const uint8_t* image, int64_t h, const uint8_t* zeros,
               uint32_t* scratch, int16_t* out) {
  FilterRowOf(f, image, h, zeros, scratch, out);
}

// Every output row of x's images into y (Out: uint8_t, float or int16_t).
template <typename Out>
ffi::Error Run(ffi::AnyBuffer x, ffi::Buffer<ffi::S32> rows, ffi::Buffer<ffi::S32> cols,
               ffi::Buffer<ffi::S32> ky, ffi::Buffer<ffi::S32> kx, Out* y, int64_t left,
               int64_t bias, int64_t shift) {
  Filter f{0, 0, 0, rows.typed_data(), cols.typed_data(), ky.typed_data(), kx.typed_data(),
           static_cast<int64_t>(ky.element_count()), static_cast<int64_t>(kx.element_count()),
           left, static_cast<uint32_t>(bias), static_cast<int>(shift)};
  const int64_t images = ReadImageShape(x, f);
  if (images < 0) return ffi::Error::InvalidArgument("CvxSeparableU8: x needs H, W, C");
  const int64_t row = f.width * f.channels, image_size = f.height * row;
  const uint8_t* in = static_cast<const uint8_t*>(x.untyped_data());
  PerThread<uint32_t> scratch(2 * row);
  const std::vector<uint8_t> zeros(row, 0);
  ForEachRow(images, f.height, [&](int64_t image, int64_t h) {
    FilterRow(f, in + image * image_size, h, zeros.data(), scratch.Mine(),
              y + image * image_size + h * row);
  });
  return ffi::Error::Success();
}

ffi::Error SeparableU8(ffi::AnyBuffer x, ffi::Buffer<ffi::S32> rows, ffi::Buffer<ffi::S32> cols,
                       ffi::Buffer<ffi::S32> ky, ffi::Buffer<ffi::S32> kx,
                       ffi::ResultBuffer<ffi::U8> y, int64_t left, int64_t bias, int64_t shift) {
  return Run(x, rows, cols, ky, kx, y->typed_data(), left, bias, shift);
}

ffi::Error SeparableU8F32(ffi::AnyBuffer x, ffi::Buffer<ffi::S32> rows,
                          ffi::Buffer<ffi::S32> cols, ffi::Buffer<ffi::S32> ky,
                          ffi::Buffer<ffi::S32> kx, ffi::ResultBuffer<ffi::F32> y, int64_t left) {
  return Run(x, rows, cols, ky, kx, y->typed_data(), left, 0, 0);
}

ffi::Error SeparableU8I16(ffi::AnyBuffer x, ffi::Buffer<ffi::S32> rows,
                          ffi::Buffer<ffi::S32> cols, ffi::Buffer<ffi::S32> ky,
                          ffi::Buffer<ffi::S32> kx, ffi::ResultBuffer<ffi::S16> y, int64_t left) {
  return Run(x, rows, cols, ky, kx, y->typed_data(), left, 0, 0);
}

// ------------------------------------------------- rectangular min and max
template <bool kMax>
inline uint8_t Pick(uint8_t a, uint8_t b) {
  return kMax ? std::max(a, b) : std::min(a, b);
}

// The padded row's border columns (`padded` holds (width + kw − 1) ·
// channels bytes, the image `left` columns in) from its image columns
// through the column map, `fill` where it reads −1.
void PadColumns(const Filter& f, uint8_t fill, uint8_t* padded) {
  const int64_t c = f.channels;
  const auto pad = [&](int64_t q) {
    const int32_t source = f.cols[q];
    for (int64_t ch = 0; ch < c; ++ch)
      padded[q * c + ch] = source < 0 ? fill : padded[(f.left + source) * c + ch];
  };
  for (int64_t q = 0; q < f.left; ++q) pad(q);
  for (int64_t q = f.left + f.width; q < f.width + f.kw - 1; ++q) pad(q);
}

// Output row h of one image: the min (max) over KH source rows into the
// padded row `padded` ((width + kw − 1) · channels bytes), then over KW of
// its columns; `fill_row` holds width · channels bytes of the fill value.
// KH = KW = 0: the kernel's size read at run time, a pass per tap;
// otherwise the tap loops are unrolled, one pass each, so the compiler
// vectorises along the row.
template <bool kMax, int KH, int KW>
inline void ExtremeRowOf(const Filter& f, const uint8_t* image, int64_t h, uint8_t fill,
                         const uint8_t* fill_row, uint8_t* __restrict padded,
                         uint8_t* __restrict out) {
  const int64_t row = f.width * f.channels, c = f.channels;
  const auto source_row = [&](int64_t i) {
    return f.rows[h + i] < 0 ? fill_row : image + f.rows[h + i] * row;
  };
  uint8_t* column = padded + f.left * c;
  if constexpr (KH > 0) {
    const uint8_t* rows[KH];
    for (int i = 0; i < KH; ++i) rows[i] = source_row(i);
    for (int64_t k = 0; k < row; ++k) {
      uint8_t value = rows[0][k];
      for (int i = 1; i < KH; ++i) value = Pick<kMax>(value, rows[i][k]);
      column[k] = value;
    }
    PadColumns(f, fill, padded);
    for (int64_t k = 0; k < row; ++k) {
      uint8_t value = padded[k];
      for (int j = 1; j < KW; ++j) value = Pick<kMax>(value, padded[k + j * c]);
      out[k] = value;
    }
  } else {
    std::copy(source_row(0), source_row(0) + row, column);
    for (int64_t i = 1; i < f.kh; ++i) {
      const uint8_t* __restrict in = source_row(i);
      for (int64_t k = 0; k < row; ++k) column[k] = Pick<kMax>(column[k], in[k]);
    }
    PadColumns(f, fill, padded);
    std::copy(padded, padded + row, out);
    for (int64_t j = 1; j < f.kw; ++j) {
      const uint8_t* __restrict shifted = padded + j * c;
      for (int64_t k = 0; k < row; ++k) out[k] = Pick<kMax>(out[k], shifted[k]);
    }
  }
}

template <bool kMax>
inline void ExtremeRowSized(const Filter& f, const uint8_t* image, int64_t h, uint8_t fill,
                            const uint8_t* fill_row, uint8_t* padded, uint8_t* out) {
  if (f.kh == 3 && f.kw == 3)
    ExtremeRowOf<kMax, 3, 3>(f, image, h, fill, fill_row, padded, out);
  else if (f.kh == 5 && f.kw == 5)
    ExtremeRowOf<kMax, 5, 5>(f, image, h, fill, fill_row, padded, out);
  else if (f.kh == 7 && f.kw == 7)
    ExtremeRowOf<kMax, 7, 7>(f, image, h, fill, fill_row, padded, out);
  else
    ExtremeRowOf<kMax, 0, 0>(f, image, h, fill, fill_row, padded, out);
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"), flatten))
void ExtremeRow(const Filter& f, const uint8_t* image, int64_t h, bool use_max, uint8_t fill,
                const uint8_t* fill_row, uint8_t* padded, uint8_t* out) {
  if (use_max)
    ExtremeRowSized<true>(f, image, h, fill, fill_row, padded, out);
  else
    ExtremeRowSized<false>(f, image, h, fill, fill_row, padded, out);
}

ffi::Error ExtremeU8(ffi::Buffer<ffi::U8> x, ffi::Buffer<ffi::S32> rows,
                     ffi::Buffer<ffi::S32> cols, ffi::ResultBuffer<ffi::U8> y, int64_t kh,
                     int64_t kw, int64_t left, int64_t fill, int64_t use_max) {
  Filter f{0, 0, 0, rows.typed_data(), cols.typed_data(), nullptr, nullptr, kh, kw, left, 0, 0};
  const int64_t images = ReadImageShape(x, f);
  if (images < 0) return ffi::Error::InvalidArgument("CvxExtremeU8: x needs H, W, C");
  const int64_t row = f.width * f.channels, image_size = f.height * row;
  const uint8_t value = static_cast<uint8_t>(fill);
  const std::vector<uint8_t> fill_row(row, value);
  PerThread<uint8_t> padded_rows((f.width + kw - 1) * f.channels);
  ForEachRow(images, f.height, [&](int64_t image, int64_t h) {
    ExtremeRow(f, x.typed_data() + image * image_size, h, use_max != 0, value, fill_row.data(),
               padded_rows.Mine(), y->typed_data() + image * image_size + h * row);
  });
  return ffi::Error::Success();
}

// The separable filters' operands: x, rows, cols, ky, kx.
auto BindOperands() {
  return ffi::Ffi::Bind()
      .Arg<ffi::AnyBuffer>()
      .Arg<ffi::Buffer<ffi::S32>>()
      .Arg<ffi::Buffer<ffi::S32>>()
      .Arg<ffi::Buffer<ffi::S32>>()
      .Arg<ffi::Buffer<ffi::S32>>();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(CvxSeparableU8, SeparableU8,
                              BindOperands()
                                  .Ret<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("left")
                                  .Attr<int64_t>("bias")
                                  .Attr<int64_t>("shift"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(CvxSeparableU8F32, SeparableU8F32,
                              BindOperands().Ret<ffi::Buffer<ffi::F32>>().Attr<int64_t>("left"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(CvxSeparableU8I16, SeparableU8I16,
                              BindOperands().Ret<ffi::Buffer<ffi::S16>>().Attr<int64_t>("left"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(CvxExtremeU8, ExtremeU8,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("kh")
                                  .Attr<int64_t>("kw")
                                  .Attr<int64_t>("left")
                                  .Attr<int64_t>("fill")
                                  .Attr<int64_t>("use_max"));
