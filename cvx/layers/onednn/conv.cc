// oneDNN convolutions as XLA FFI handlers for JAX on CPU.
//
// Three handlers, one per pass of a 2-D convolution, all float32 with NHWC
// activations and HWIO kernels (I = C_in / groups), the layout of
// cvx.layers.conv_lowering:
//   CvxOneDnnConvForward         (x, w)  -> y
//   CvxOneDnnConvBackwardData    (dy, w) -> dx
//   CvxOneDnnConvBackwardWeights (x, dy) -> dw
// Attributes: strides (2), pads (top, bottom, left, right), dilation (2; 1 =
// none) and groups. oneDNN picks its kernel and weights layout for the shapes
// ("any"); the HWIO kernel is reordered to that layout on each call (kernels
// are small next to activations). Plans (primitive + reorder) are built once
// per shape and cached; scratch and reordered-weight buffers are per calling
// thread, so XLA may run independent convs concurrently.
//
// Input gradients of ungrouped convs with few input channels and more
// outputs (first layers on grey or RGB images) skip oneDNN's direct kernel,
// which vectorises over those channels (a 3-channel dx at ~36 GFLOP/s): the
// patch gradients dy · Wᵀ are one oneDNN matmul, summed into place (col2im)
// by OpenMP loops, in batch chunks whose patch gradients stay in cache.
// Stride-1 3×3 convs with ≥ 32 channels in and out run all three passes by
// Winograd's F(2×2, 3×3) (16 oneDNN matmuls between vectorised transforms,
// 2.25× fewer multiplies). Unpadded 1×1 convs, strided ones or stride-1 ones on small
// maps, are one oneDNN matmul per pass over the pixels they read. Stride-1
// depthwise convs of ≤ 128 channels or on maps of ≤ 4 pixels run
// depthwise.cc's passes; other depthwise kernel gradients on the smallest
// maps a direct loop. Stride-1 convs of single-channel images to few channels
// run single_channel.cc's row-vectorised loops (all passes with ≥ 5×5
// kernels, else dX), and the gradients of convs of few channels to many
// narrow_input.cc's.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include "depthwise.h"
#include "narrow_input.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "single_channel.h"
#include "vectors.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

using Tensor = ffi::Buffer<ffi::F32, 4>;
using Result = ffi::Result<Tensor>;
using Ints = ffi::Span<const int64_t>;

enum class Pass { kForward, kBackwardData, kBackwardWeights };

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Shapes and parameters of one conv; x and y are NHWC, w is HWIO.
struct Geometry {
  memory::dims x, w, y, strides, dilation, pad_low, pad_high;
  int64_t groups;

  std::string Key(Pass pass) const {
    std::string key = std::to_string(static_cast<int>(pass));
    for (const memory::dims* dims : {&x, &w, &y, &strides, &dilation, &pad_low, &pad_high})
      for (int64_t v : *dims) key += "," + std::to_string(v);
    return key + "," + std::to_string(groups);
  }
};

memory::dims Dims(ffi::Span<const int64_t> span) { return {span.begin(), span.end()}; }

Geometry MakeGeometry(memory::dims x, memory::dims w, memory::dims y, Ints strides, Ints pads,
                      Ints dilation, int64_t groups) {
  // oneDNN counts dilation from 0 (no holes); XLA from 1.
  return {x, w, y, Dims(strides), {dilation[0] - 1, dilation[1] - 1},
          {pads[0], pads[2]}, {pads[1], pads[3]}, groups};
}

// An NHWC tensor under oneDNN's logical N, C, H, W dims.
memory::desc Activations(const memory::dims& nhwc) {
  return memory::desc({nhwc[0], nhwc[3], nhwc[1], nhwc[2]}, memory::data_type::f32,
                      memory::format_tag::nhwc);
}

// An HWIO kernel under oneDNN's logical O, I, H, W (or G, O/G, I, H, W) dims.
memory::desc Kernel(const memory::dims& hwio, int64_t groups) {
  const int64_t kh = hwio[0], kw = hwio[1], in = hwio[2], out = hwio[3];
  if (groups == 1)
    return memory::desc({out, in, kh, kw}, memory::data_type::f32, memory::format_tag::hwio);
  const int64_t out_per_group = out / groups;  // output channel o = g · (O/G) + j
  return memory::desc({groups, out_per_group, in, kh, kw}, memory::data_type::f32,
                      memory::dims{out_per_group, 1, out, kw * in * out, in * out});
}

memory::desc AnyLayout(const memory::desc& desc) {
  return memory::desc(desc.get_dims(), memory::data_type::f32, memory::format_tag::any);
}

// A pass's primitive, the kernel layout it wants and the reorder to or from HWIO.
struct Plan {
  dnnl::primitive conv;
  memory::desc kernel;
  memory::desc scratch;
  bool reorders_kernel = false;
  dnnl::reorder kernel_reorder;
};

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return {Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
          Activations(g.x), AnyLayout(Kernel(g.w, g.groups)), Activations(g.y),
          g.strides, g.dilation, g.pad_low, g.pad_high, UserScratchpad()};
}

// The input- or kernel-gradient descriptor (Desc), hinted by the forward's.
template <typename Desc>
Desc BackwardDesc(const Geometry& g, const memory::desc& hwio,
                  const dnnl::convolution_forward::primitive_desc& forward) {
  return Desc(Engine(), dnnl::algorithm::convolution_direct, Activations(g.x), AnyLayout(hwio),
              Activations(g.y), g.strides, g.dilation, g.pad_low, g.pad_high, forward,
              UserScratchpad());
}

template <typename Desc>
Plan MakePlan(const Desc& desc, const memory::desc& kernel, const memory::desc& hwio,
              bool to_hwio) {
  Plan plan{dnnl::primitive(desc), kernel, desc.scratchpad_desc()};
  plan.reorders_kernel = kernel != hwio;
  if (plan.reorders_kernel) {
    plan.kernel_reorder = to_hwio ? dnnl::reorder({Engine(), kernel, Engine(), hwio})
                                  : dnnl::reorder({Engine(), hwio, Engine(), kernel});
  }
  return plan;
}

Plan Build(Pass pass, const Geometry& g) {
  const memory::desc hwio = Kernel(g.w, g.groups);
  const auto forward = ForwardDesc(g);
  switch (pass) {
    case Pass::kForward:
      return MakePlan(forward, forward.weights_desc(), hwio, false);
    case Pass::kBackwardData: {
      const auto desc =
          BackwardDesc<dnnl::convolution_backward_data::primitive_desc>(g, hwio, forward);
      return MakePlan(desc, desc.weights_desc(), hwio, false);
    }
    case Pass::kBackwardWeights: {
      const auto desc =
          BackwardDesc<dnnl::convolution_backward_weights::primitive_desc>(g, hwio, forward);
      return MakePlan(desc, desc.diff_weights_desc(), hwio, true);
    }
  }
  throw std::logic_error("unknown pass");
}

// The plan of type T cached under key, built by build() on first use.
template <typename T, typename Builder>
std::shared_ptr<const T> Cached(const std::string& key, Builder build) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const T>> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto& plan = plans[key];
  if (!plan) plan = std::make_shared<const T>(build());
  return plan;
}

std::shared_ptr<const Plan> CachedPlan(Pass pass, const Geometry& g) {
  return Cached<Plan>(g.Key(pass), [&] { return Build(pass, g); });
}

// A 64-byte aligned buffer that grows to the largest size asked of it.
class ThreadBuffer {
 public:
  ~ThreadBuffer() { std::free(data_); }
  void* Get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      data_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      size_ = data_ ? bytes : 0;
      if (!data_) throw std::bad_alloc();
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

void Execute(Pass pass, const Geometry& g, void* in0, void* in1, void* out) {
  const auto plan = CachedPlan(pass, g);
  thread_local dnnl::stream stream(Engine());
  thread_local ThreadBuffer scratch_buffer, kernel_buffer;
  dnnl::engine& engine = Engine();
  memory scratch(plan->scratch, engine, scratch_buffer.Get(plan->scratch.get_size()));
  // The kernel operand (or result) in HWIO, and in the layout the conv uses.
  void* hwio_data = pass == Pass::kBackwardWeights ? out : in1;
  memory hwio(Kernel(g.w, g.groups), engine, hwio_data);
  memory kernel = plan->reorders_kernel
      ? memory(plan->kernel, engine, kernel_buffer.Get(plan->kernel.get_size()))
      : memory(plan->kernel, engine, hwio_data);
  if (plan->reorders_kernel && pass != Pass::kBackwardWeights)
    plan->kernel_reorder.execute(stream, hwio, kernel);
  memory x(Activations(g.x), engine, DNNL_MEMORY_NONE);
  memory y(Activations(g.y), engine, DNNL_MEMORY_NONE);
  std::unordered_map<int, memory> args{{DNNL_ARG_SCRATCHPAD, scratch}};
  switch (pass) {
    case Pass::kForward:
      x.set_data_handle(in0), y.set_data_handle(out);
      args.insert({{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, kernel}, {DNNL_ARG_DST, y}});
      break;
    case Pass::kBackwardData:
      y.set_data_handle(in0), x.set_data_handle(out);
      args.insert({{DNNL_ARG_DIFF_DST, y}, {DNNL_ARG_WEIGHTS, kernel}, {DNNL_ARG_DIFF_SRC, x}});
      break;
    case Pass::kBackwardWeights:
      x.set_data_handle(in0), y.set_data_handle(in1);
      args.insert({{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, y}, {DNNL_ARG_DIFF_WEIGHTS, kernel}});
      break;
  }
  plan->conv.execute(stream, args);
  if (plan->reorders_kernel && pass == Pass::kBackwardWeights)
    plan->kernel_reorder.execute(stream, kernel, hwio);
  stream.wait();
}

// Input gradients by col2im: ungrouped convs with at most this many input
// channels (oneDNN's direct dx fills its 16-lane vectors with them) and more
// than twice as many output channels (the matmul's depth), unless the
// single-channel loops below take them. dX in ms, direct /
// col2im, batch 128 unless noted (benchmarks/RESULTS.md): 32×32×3 → 64 3×3
// 4.8 / 3.7, 28×28×1 → 6 5×5 2.2–2.6 / 1.0–1.5, 32×32×3 → 8 1.5 / 1.1; at
// batch 64, 64×64×4 → 4 2.0 / 2.4. With 6 or 8 input channels col2im is
// faster alone (14×14×6 → 16 5×5 1.5–1.8 / 0.9–1.2) but made LeNet-5's whole
// train step slower in 4 of 5 alternating runs, and 32×32×8 → 16 slower alone.
constexpr int64_t kCol2ImMaxInChannels = 4;
// Images per chunk: as many as keep a chunk's patch gradients within this.
constexpr int64_t kCol2ImChunkBytes = 4 << 20;
// Patch-gradient rows are padded to whole 16-lane vectors for the matmul
// (27 → 32 columns: 1.5 against 2.0 ms per 65,536 rows).
constexpr int64_t kPatchAlign = 16;

bool UsesCol2Im(const Geometry& g) {
  return g.groups == 1 && g.x[3] <= kCol2ImMaxInChannels && g.w[3] > 2 * g.x[3];
}

// a (rows × inner) · b (inner × cols) → c, row-major; a or b read transposed
// (stored column-major) where flagged.
struct MatmulPlan {
  dnnl::matmul matmul;
  memory::desc a, b, c, scratch;
};

MatmulPlan BuildMatmul(int64_t rows, int64_t inner, int64_t cols, bool a_transposed,
                       bool b_transposed) {
  const auto f32 = memory::data_type::f32;
  const memory::desc a({rows, inner}, f32,
                       a_transposed ? memory::dims{1, rows} : memory::dims{inner, 1});
  const memory::desc b({inner, cols}, f32,
                       b_transposed ? memory::dims{1, inner} : memory::dims{cols, 1});
  const memory::desc c({rows, cols}, f32, memory::dims{cols, 1});
  const dnnl::matmul::primitive_desc desc(Engine(), a, b, c, UserScratchpad());
  return {dnnl::matmul(desc), a, b, c, desc.scratchpad_desc()};
}

std::shared_ptr<const MatmulPlan> CachedMatmul(int64_t rows, int64_t inner, int64_t cols,
                                               bool a_transposed, bool b_transposed) {
  std::string key = "matmul";
  for (int64_t v : {rows, inner, cols, int64_t{a_transposed}, int64_t{b_transposed}})
    key += "," + std::to_string(v);
  return Cached<MatmulPlan>(
      key, [&] { return BuildMatmul(rows, inner, cols, a_transposed, b_transposed); });
}

void RunMatmul(const MatmulPlan& plan, const float* a, const float* b, float* c) {
  thread_local dnnl::stream stream(Engine());
  thread_local ThreadBuffer scratch_buffer;
  dnnl::engine& engine = Engine();
  void* scratch = scratch_buffer.Get(plan.scratch.get_size());
  plan.matmul.execute(stream, {{DNNL_ARG_SRC, memory(plan.a, engine, const_cast<float*>(a))},
                               {DNNL_ARG_WEIGHTS, memory(plan.b, engine, const_cast<float*>(b))},
                               {DNNL_ARG_DST, memory(plan.c, engine, c)},
                               {DNNL_ARG_SCRATCHPAD, memory(plan.scratch, engine, scratch)}});
  stream.wait();
}

// Wᵀ from an HWIO kernel: C_out rows of the kh·kw·C_in taps, zero-padded to
// `patch` columns.
void PaddedKernelT(const Geometry& g, const float* hwio, int64_t patch, float* out) {
  const int64_t taps = g.w[0] * g.w[1] * g.w[2], out_channels = g.w[3];
  for (int64_t o = 0; o < out_channels; ++o)
    for (int64_t q = 0; q < patch; ++q)
      out[o * patch + q] = q < taps ? hwio[q * out_channels + o] : 0.0f;
}

// ⌈a / b⌉ for b > 0 and any sign of a.
int64_t CeilDiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); }

// dx (images × H × W × C_in) from their patch gradients (images × H_out ×
// W_out rows of kh × kw × C_in, `patch` floats apart). Each output row's
// patches (a few KB) are added, tap by tap, into the input rows they read, a
// channel-planar per-thread sum of one image, then interleaved into dx. An
// input pixel sums its taps by kernel row from the last, by column from the
// first.
__attribute__((target_clones("avx512f", "avx2", "default")))
void Col2Im(const Geometry& g, const float* patches, int64_t patch, int64_t images, float* dx) {
  const int64_t height = g.x[1], width = g.x[2], channels = g.x[3];
  const int64_t taps_h = g.w[0], taps_w = g.w[1], out_h = g.y[1], out_w = g.y[2];
  const int64_t stride_h = g.strides[0], stride_w = g.strides[1];
  const int64_t step_h = g.dilation[0] + 1, step_w = g.dilation[1] + 1;
  const int64_t plane = height * width;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < images; ++n) {
    thread_local ThreadBuffer image_buffer;
    auto* sums = static_cast<float*>(image_buffer.Get(channels * plane * sizeof(float)));
    std::fill(sums, sums + channels * plane, 0.0f);
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const float* row_patches = patches + (n * out_h + oh) * out_w * patch;
      for (int64_t i = 0; i < taps_h; ++i) {
        const int64_t h = oh * stride_h + i * step_h - g.pad_low[0];
        if (h < 0 || h >= height) continue;
        for (int64_t j = 0; j < taps_w; ++j) {
          const int64_t offset = j * step_w - g.pad_low[1];  // w = ow · stride + offset
          const int64_t ow_begin = std::max<int64_t>(0, CeilDiv(-offset, stride_w));
          const int64_t ow_end = std::min(out_w, CeilDiv(width - offset, stride_w));
          for (int64_t c = 0; c < channels; ++c) {
            const float* tap = row_patches + (i * taps_w + j) * channels + c;
            float* to = sums + c * plane + h * width;
            for (int64_t ow = ow_begin; ow < ow_end; ++ow)
              to[ow * stride_w + offset] += tap[ow * patch];
          }
        }
      }
    }
    float* image = dx + n * plane * channels;
    for (int64_t q = 0; q < plane; ++q)
      for (int64_t c = 0; c < channels; ++c) image[q * channels + c] = sums[c * plane + q];
  }
}

// dx = col2im(dy · Wᵀ), over chunks of images.
void BackwardDataCol2Im(const Geometry& g, const float* dy, const float* w, float* dx) {
  const int64_t images = g.x[0], pixels_out = g.y[1] * g.y[2], out_channels = g.w[3];
  const int64_t patch = (g.w[0] * g.w[1] * g.w[2] + kPatchAlign - 1) / kPatchAlign * kPatchAlign;
  const int64_t image_bytes = pixels_out * patch * static_cast<int64_t>(sizeof(float));
  const int64_t chunks = std::max<int64_t>(1, images * image_bytes / kCol2ImChunkBytes);
  const int64_t chunk = (images + chunks - 1) / chunks;
  thread_local ThreadBuffer kernel_buffer, patch_buffer;
  auto* kernel = static_cast<float*>(kernel_buffer.Get(out_channels * patch * sizeof(float)));
  PaddedKernelT(g, w, patch, kernel);
  for (int64_t first = 0; first < images; first += chunk) {
    const int64_t count = std::min(chunk, images - first), rows = count * pixels_out;
    const auto plan = CachedMatmul(rows, out_channels, patch, false, false);
    auto* patches = static_cast<float*>(patch_buffer.Get(plan->c.get_size()));
    RunMatmul(*plan, dy + first * pixels_out * out_channels, kernel, patches);
    Col2Im(g, patches, patch, count, dx + first * g.x[1] * g.x[2] * g.x[3]);
  }
}

// ---------------------------------------------------------------- 1×1 convs
// Unpadded 1×1 convs without groups are matmuls over the N·H_out·W_out pixels
// they read: y = x·W, dx = dy·Wᵀ, dw = xᵀ·dy (W: the C_in × C_out kernel);
// strided ones first gather the pixels read (and scatter dx back, zeros
// between). oneDNN's direct 1×1 kernel parallelises poorly over small maps;
// on larger ones at stride 1 it beats the matmul. Forward + dX + dW GFLOP/s
// at batch 128, direct / matmul: 1×1×1024 → 1024 62 / 198, 2×2×512 → 512
// 168 / 203, 4×4×128 → 256 177 / 210, 8×8×64 → 128 215 / 197, 32×32×32 → 64
// 91 / 83.
constexpr int64_t kMatmulMaxPixels = 16;  // per image, at stride 1

bool Strided(const Geometry& g) { return g.strides[0] > 1 || g.strides[1] > 1; }

bool UsesMatmul(const Geometry& g) {
  return g.groups == 1 && g.w[0] == 1 && g.w[1] == 1 && g.pad_low[0] == 0 &&
         g.pad_low[1] == 0 && g.pad_high[0] == 0 && g.pad_high[1] == 0 &&
         (Strided(g) || g.x[1] * g.x[2] <= kMatmulMaxPixels);
}

// The pixels a strided 1×1 conv reads: x (N × H × W × C) → N × H_out × W_out × C.
void GatherStrided(const Geometry& g, const float* x, float* read) {
  const int64_t height = g.x[1], width = g.x[2], channels = g.x[3];
  const int64_t out_h = g.y[1], out_w = g.y[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.x[0]; ++n) {
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const float* row = x + ((n * height + oh * g.strides[0]) * width) * channels;
      float* to = read + (n * out_h + oh) * out_w * channels;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const float* pixel = row + ow * g.strides[1] * channels;
        std::copy(pixel, pixel + channels, to + ow * channels);
      }
    }
  }
}

// The inverse of GatherStrided for gradients: dx is `read` at the pixels read, 0 elsewhere.
void ScatterStrided(const Geometry& g, const float* read, float* dx) {
  const int64_t height = g.x[1], width = g.x[2], channels = g.x[3];
  const int64_t out_h = g.y[1], out_w = g.y[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.x[0]; ++n) {
    for (int64_t h = 0; h < height; ++h) {
      float* row = dx + (n * height + h) * width * channels;
      std::fill(row, row + width * channels, 0.0f);
      if (h % g.strides[0] != 0) continue;  // unpadded: every h/stride < H_out
      const float* from = read + (n * out_h + h / g.strides[0]) * out_w * channels;
      for (int64_t ow = 0; ow < out_w; ++ow)
        std::copy(from + ow * channels, from + (ow + 1) * channels,
                  row + ow * g.strides[1] * channels);
    }
  }
}

// One pass of a UsesMatmul conv: (x, w) → y, (dy, w) → dx or (x, dy) → dw.
void PointwisePass(Pass pass, const Geometry& g, const float* in0, const float* in1,
                   float* out) {
  const int64_t pixels = g.y[0] * g.y[1] * g.y[2], in_c = g.w[2], out_c = g.w[3];
  const bool strided = Strided(g);
  thread_local ThreadBuffer read_buffer;
  auto* read = strided ? static_cast<float*>(read_buffer.Get(pixels * in_c * sizeof(float)))
                       : nullptr;
  if (strided && pass != Pass::kBackwardData) GatherStrided(g, in0, read);
  const float* x = strided ? read : in0;
  switch (pass) {
    case Pass::kForward:
      return RunMatmul(*CachedMatmul(pixels, in_c, out_c, false, false), x, in1, out);
    case Pass::kBackwardData:
      RunMatmul(*CachedMatmul(pixels, out_c, in_c, false, true), in0, in1, strided ? read : out);
      if (strided) ScatterStrided(g, read, out);
      return;
    case Pass::kBackwardWeights:
      return RunMatmul(*CachedMatmul(in_c, pixels, out_c, true, false), x, in1, out);
  }
}

// ------------------------------------------------- single-channel images
// On AVX-512 CPUs, undilated stride-1 convs of one input channel to fewer
// than 16 outputs (oneDNN fills its 16-lane vectors with output channels)
// take single_channel.cc's row-vectorised input gradient; with kernels of at
// least 25 taps its forward and kernel gradient too. Forward / dX / dW
// GFLOP/s at batch 128, oneDNN (dX: col2im) against single_channel.cc, two
// runs (benchmarks/RESULTS.md): 28×28×1 → 6 5×5 70–74 / 21–30 / 70–79
// against 117–119 / 73–79 / 89–91, 64×64×1 → 4 7×7 (batch 32) 51–57 / 21–31
// / 48–51 against 151–152 / 98–102 / 122–129; but 3×3 kernels, where
// splitting dy into channel planes weighs more against 9 taps, 28×28×1 → 15
// 60–142 / 33–52 / 128–159 against 64–73 / 49–51 / 39–45.
constexpr int64_t kSingleChannelMaxOut = 16;
constexpr int64_t kSingleChannelMinTaps = 25;  // for the forward and dW

bool UsesSingleChannelInputGrad(const Geometry& g) {
  static const bool supported = cvx::SingleChannelSupported();
  return supported && g.groups == 1 && g.x[3] == 1 && g.w[3] < kSingleChannelMaxOut &&
         !Strided(g) && g.dilation[0] == 0 && g.dilation[1] == 0;
}

bool UsesSingleChannel(const Geometry& g) {
  return UsesSingleChannelInputGrad(g) && g.w[0] * g.w[1] >= kSingleChannelMinTaps;
}

cvx::SingleChannelConv SingleChannel(const Geometry& g) {
  return {g.x[0], g.x[1], g.x[2], g.w[0], g.w[1], g.w[3], g.y[1], g.y[2], g.pad_low[0],
          g.pad_low[1]};
}

// ------------------------------------------------------ narrow input images
// On AVX-512 CPUs, undilated ungrouped convs of ≤ 8 input channels to whole
// 16-lane vectors of outputs take narrow_input.cc's gradients, vectorised
// over output channels (oneDNN blocks input channels by 16): dW with ≥ 32
// outputs, dX at stride 1 where col2im does not take it. GFLOP/s at batch
// 128, oneDNN (or col2im) against narrow_input.cc, alternating runs
// (benchmarks/RESULTS.md): dW 32×32×3 → 64 3×3 47–113 / 230–279, 32×32×8
// → 64 3×3 121–176 / 298–366, 128×128×3 → 32 3×3/2 87–118 / 136–219, but
// 32×32×8 → 16 3×3 236–373 / 126–351; dX 14×14×6 → 16 5×5 57–65 / 105–119,
// 32×32×8 → 64 3×3 136–171 / 176–261; col2im's 32×32×3 → 64 dX 106–184
// against 100–125.
constexpr int64_t kNarrowInputMinKernelGradOut = 32;

bool UsesNarrowInput(const Geometry& g) {
  static const bool supported = cvx::NarrowInputSupported();
  return supported && g.groups == 1 && g.x[3] <= cvx::kNarrowInputMaxChannels &&
         g.w[3] % cvx::kNarrowInputLanes == 0 && g.dilation[0] == 0 && g.dilation[1] == 0 &&
         g.x[0] > 0 && g.y[1] > 0 && g.y[2] > 0;
}

bool UsesNarrowInputInputGrad(const Geometry& g) { return UsesNarrowInput(g) && !Strided(g); }

bool UsesNarrowInputKernelGrad(const Geometry& g) {
  return UsesNarrowInput(g) && g.w[3] >= kNarrowInputMinKernelGradOut;
}

cvx::NarrowInputConv NarrowInput(const Geometry& g) {
  return {g.x[0], g.x[1], g.x[2], g.x[3], g.w[0], g.w[1], g.w[3], g.y[1], g.y[2],
          g.strides[0], g.strides[1], g.pad_low[0], g.pad_low[1]};
}

// --------------------------------------------------------- depthwise convs
// On AVX-512 CPUs, stride-1 depthwise convs (multiplier 1) of 3×3 or 5×5
// kernels over whole 16-lane vectors of channels take depthwise.cc's passes
// where they measured faster than oneDNN's: maps of ≤ 4 output pixels, or
// ≤ 128 channels. Forward + dX + dW GFLOP/s at batch 128, oneDNN / depthwise.cc,
// same runs (benchmarks/RESULTS.md): 16×16×32 76–77 / 103–141, 8×8×128 106 /
// 118, 2×2×512 42 / 65, 1×1×1024 48 / 76, 32×32×128 26 / 30; but 4×4×256
// 53–83 / 48–56, 4×4×1024 32–81 / 23–63. Strided ones stay on oneDNN (within
// noise of it either way).
constexpr int64_t kDepthwiseMaxChannels = 128;
constexpr int64_t kDepthwiseSmallMapPixels = 4;

cvx::DepthwiseConv Depthwise(const Geometry& g) {
  return {g.x[0], g.x[1], g.x[2], g.x[3], g.w[0], g.w[1], g.y[1], g.y[2],
          g.dilation[0] + 1, g.dilation[1] + 1, g.pad_low[0], g.pad_low[1]};
}

bool UsesDepthwise(const Geometry& g) {
  return g.groups > 1 && g.w[2] == 1 && g.w[3] == g.groups && g.x[3] == g.groups &&
         !Strided(g) &&
         (g.groups <= kDepthwiseMaxChannels || g.y[1] * g.y[2] <= kDepthwiseSmallMapPixels) &&
         cvx::DepthwiseSupported(Depthwise(g));
}

// ------------------------------------------------ depthwise kernel gradients
// On the smallest maps, convs with one input channel per group (depthwise,
// any channel multiplier) get their kernel gradient from a direct loop: each
// work item, a block of output channels over a fixed chunk of images, walks
// the output pixels once and adds into every tap's sums; the chunks' sums are
// then added in chunk order, so the result does not depend on the thread
// count. oneDNN's depthwise dW degenerates there; 3×3 dW at batch 128, oneDNN
// / this loop: 1×1×1024 2.92 / 0.13 ms, 2×2×512 2.97 / 0.39, stride 2
// 2.16 / 0.13; but 4×4×256 0.09 / 0.84 and 16×16×32 0.14 / 2.19.
constexpr int64_t kDepthwiseLoopMaxPixels = 4;  // input map H·W
constexpr int64_t kDepthwiseBlock = 16;         // output channels per work item
constexpr int64_t kDepthwiseChunkImages = 8;    // images per work item

bool UsesDepthwiseKernelGrad(const Geometry& g) {
  return g.groups > 1 && g.w[2] == 1 && g.x[1] * g.x[2] <= kDepthwiseLoopMaxPixels;
}

// Adds the images [first, last) of one channel block's products into sums
// (taps × C_out, this block's columns).
__attribute__((target_clones("avx512f", "avx2", "default")))
void DepthwiseBlockSums(const Geometry& g, const float* x, const float* dy, int64_t first,
                        int64_t last, int64_t c0, int64_t block, float* sums) {
  const int64_t height = g.x[1], width = g.x[2], in_c = g.x[3];
  const int64_t taps_h = g.w[0], taps_w = g.w[1], out_c = g.w[3], mult = out_c / g.groups;
  const int64_t out_h = g.y[1], out_w = g.y[2];
  const int64_t step_h = g.dilation[0] + 1, step_w = g.dilation[1] + 1;
  for (int64_t n = first; n < last; ++n)
    for (int64_t oh = 0; oh < out_h; ++oh)
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const float* grad = dy + ((n * out_h + oh) * out_w + ow) * out_c + c0;
        for (int64_t i = 0; i < taps_h; ++i) {
          const int64_t h = oh * g.strides[0] + i * step_h - g.pad_low[0];
          if (h < 0 || h >= height) continue;
          for (int64_t j = 0; j < taps_w; ++j) {
            const int64_t w = ow * g.strides[1] + j * step_w - g.pad_low[1];
            if (w < 0 || w >= width) continue;
            const float* pixel = x + ((n * height + h) * width + w) * in_c;
            float* sum = sums + (i * taps_w + j) * out_c + c0;
            if (mult == 1) {
              for (int64_t c = 0; c < block; ++c) sum[c] += pixel[c0 + c] * grad[c];
            } else {
              for (int64_t c = 0; c < block; ++c) sum[c] += pixel[(c0 + c) / mult] * grad[c];
            }
          }
        }
      }
}

void DepthwiseKernelGrad(const Geometry& g, const float* x, const float* dy, float* dw) {
  const int64_t images = g.x[0], out_c = g.w[3], taps = g.w[0] * g.w[1];
  const int64_t blocks = (out_c + kDepthwiseBlock - 1) / kDepthwiseBlock;
  const int64_t chunks = (images + kDepthwiseChunkImages - 1) / kDepthwiseChunkImages;
  std::vector<float> partial(chunks * taps * out_c, 0.0f);  // chunk × tap × channel
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t first = chunk * kDepthwiseChunkImages, c0 = b * kDepthwiseBlock;
      DepthwiseBlockSums(g, x, dy, first, std::min(images, first + kDepthwiseChunkImages), c0,
                         std::min(kDepthwiseBlock, out_c - c0),
                         partial.data() + chunk * taps * out_c);
    }
  cvx::vectors::SumChunks(partial.data(), chunks, taps * out_c, dw);  // HWIO, I = 1
}

// ----------------------------------------------------------------- Winograd
// Stride-1 3×3 convs by Winograd's minimal filtering F(2×2, 3×3): each 2×2
// output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A of its 4×4 input tile d, so the
// multiplies become 16 matmuls (tiles × C_in)·(C_in × C_out), 2.25× fewer
// than the direct conv's. Tiles go in chunks that stay in cache, one chunk
// per OpenMP thread at a time. The input gradient of such a conv is the
// forward conv of dy with the kernel rotated by 180° and transposed; the
// kernel gradient sums (A dy Aᵀ) ⊙ (Bᵀ d B) over tiles, then applies Gᵀ·G.

// Convs with at least this many input and output channels: narrower matmuls
// and transforms cost more than the 2.25× saves (128×32×32×C → C, forward +
// dX + dW against the direct conv: C = 16 18.0 / 9.6 ms, 24 29.5 / 27.6,
// 32 35.5 / 40.9, 48 67.7 / 103.1).
constexpr int64_t kWinogradMinChannels = 32;
// A chunk's transformed tiles (16 × tiles × channels floats) within this.
constexpr int64_t kWinogradChunkBytes = 1 << 20;
constexpr int64_t kWinogradMaxChunkTiles = 256;

bool UsesWinograd(const Geometry& g) {
  return g.groups == 1 && g.w[0] == 3 && g.w[1] == 3 && g.strides[0] == 1 &&
         g.strides[1] == 1 && g.dilation[0] == 0 && g.dilation[1] == 0 &&
         g.w[2] >= kWinogradMinChannels && g.w[3] >= kWinogradMinChannels;
}

// One stride-1 3×3 conv as Winograd runs it: in (images × in_h × in_w ×
// in_c) → out (images × out_h × out_w × out_c); output pixel (h, w) reads
// input rows h − pad_top … h − pad_top + 2 (zeros outside), likewise columns.
struct WinogradShape {
  int64_t images, in_h, in_w, in_c, out_h, out_w, out_c, pad_top, pad_left;
  int64_t TilesH() const { return (out_h + 1) / 2; }
  int64_t TilesW() const { return (out_w + 1) / 2; }
  int64_t Tiles() const { return images * TilesH() * TilesW(); }
  int64_t ChunkTiles() const {
    const int64_t per_tile = 16 * std::max(in_c, out_c) * static_cast<int64_t>(sizeof(float));
    return std::clamp<int64_t>(kWinogradChunkBytes / per_tile / 16 * 16, 16,
                               kWinogradMaxChunkTiles);
  }
};

// The 16 batched matmuls of a chunk, and the reorder of the transformed
// kernel (16 × C_in × C_out, or for the rotated kernel stored transposed)
// to the layout the matmul picked.
struct WinogradPlan {
  dnnl::matmul matmul;
  dnnl::reorder kernel_reorder;
  memory::desc kernel_user, kernel, tiles, products, scratch;
};

WinogradPlan BuildWinograd(int64_t chunk, int64_t in_c, int64_t out_c, bool rotated) {
  const auto f32 = memory::data_type::f32;
  const memory::desc tiles({16, chunk, in_c}, f32, memory::format_tag::abc);
  const memory::desc products({16, chunk, out_c}, f32, memory::format_tag::abc);
  const memory::dims strides = rotated ? memory::dims{in_c * out_c, 1, in_c}
                                       : memory::dims{in_c * out_c, out_c, 1};
  const memory::desc kernel_user({16, in_c, out_c}, f32, strides);
  const memory::desc any({16, in_c, out_c}, f32, memory::format_tag::any);
  const dnnl::matmul::primitive_desc desc(Engine(), tiles, any, products, UserScratchpad());
  const memory::desc kernel = desc.weights_desc();
  return {dnnl::matmul(desc), dnnl::reorder({Engine(), kernel_user, Engine(), kernel}),
          kernel_user, kernel, tiles, products, desc.scratchpad_desc()};
}

// The 1-D transforms, each applied elementwise to n-float rows (vectorised
// in every target_clones clone that inlines them).
// Bᵀ (4 → 4): the input tile's rows or columns.
__attribute__((always_inline)) inline void ApplyBt(
    const float* __restrict x0, const float* __restrict x1, const float* __restrict x2,
    const float* __restrict x3, float* __restrict y0, float* __restrict y1,
    float* __restrict y2, float* __restrict y3, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    y0[i] = x0[i] - x2[i], y1[i] = x1[i] + x2[i], y2[i] = x2[i] - x1[i], y3[i] = x1[i] - x3[i];
  }
}

// Aᵀ (4 → 2): the products' rows or columns.
__attribute__((always_inline)) inline void ApplyAt(
    const float* __restrict x0, const float* __restrict x1, const float* __restrict x2,
    const float* __restrict x3, float* __restrict y0, float* __restrict y1, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y0[i] = x0[i] + x1[i] + x2[i], y1[i] = x1[i] - x2[i] - x3[i];
}

// G (3 → 4): the kernel's rows or columns.
__attribute__((always_inline)) inline void ApplyG(
    const float* __restrict x0, const float* __restrict x1, const float* __restrict x2,
    float* __restrict y0, float* __restrict y1, float* __restrict y2, float* __restrict y3,
    int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    y0[i] = x0[i], y1[i] = 0.5f * (x0[i] + x1[i] + x2[i]);
    y2[i] = 0.5f * (x0[i] - x1[i] + x2[i]), y3[i] = x2[i];
  }
}

// A (2 → 4): the output gradient's rows or columns.
__attribute__((always_inline)) inline void ApplyA(
    const float* __restrict x0, const float* __restrict x1, float* __restrict y0,
    float* __restrict y1, float* __restrict y2, float* __restrict y3, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y0[i] = x0[i], y1[i] = x0[i] + x1[i], y2[i] = x0[i] - x1[i],
                                  y3[i] = -x1[i];
}

// Gᵀ (4 → 3): the kernel gradient's rows or columns.
__attribute__((always_inline)) inline void ApplyGt(
    const float* __restrict x0, const float* __restrict x1, const float* __restrict x2,
    const float* __restrict x3, float* __restrict y0, float* __restrict y1,
    float* __restrict y2, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    y0[i] = x0[i] + 0.5f * (x1[i] + x2[i]), y1[i] = 0.5f * (x1[i] - x2[i]);
    y2[i] = 0.5f * (x1[i] + x2[i]) + x3[i];
  }
}

// Rotating g by 180° swaps rows 0 and 3 of G·g (rows 1 and 2 of G are
// symmetric), so (a, b) of the rotated kernel's transform is (r(a), r(b)).
int64_t RotatedIndex(int64_t a) { return a == 0 ? 3 : a == 3 ? 0 : a; }

// u[slot][c][k] = (G g Gᵀ)[a][b] for g = hwio[:, :, c, k] (3×3×C×K), slot
// a·4 + b, or r(a)·4 + r(b) for the rotated kernel; `rows` holds 12·K floats.
__attribute__((target_clones("avx512f", "avx2", "default")))
void KernelTransform(const float* hwio, int64_t in_c, int64_t out_c, bool rotated, float* rows,
                     float* u) {
  int64_t slot[16];
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t b = 0; b < 4; ++b)
      slot[a * 4 + b] = rotated ? RotatedIndex(a) * 4 + RotatedIndex(b) : a * 4 + b;
  const int64_t tap = in_c * out_c;
  for (int64_t c = 0; c < in_c; ++c) {
    const float* g = hwio + c * out_c;  // tap (i, j) at g + (3i + j)·tap
    float* t = rows;                    // (G g)[a][j] at t + (3a + j)·out_c
    for (int64_t j = 0; j < 3; ++j)
      ApplyG(g + j * tap, g + (3 + j) * tap, g + (6 + j) * tap, t + j * out_c,
             t + (3 + j) * out_c, t + (6 + j) * out_c, t + (9 + j) * out_c, out_c);
    float* row = u + c * out_c;
    for (int64_t a = 0; a < 4; ++a) {
      const float* ta = t + 3 * a * out_c;
      ApplyG(ta, ta + out_c, ta + 2 * out_c, row + slot[a * 4] * tap, row + slot[a * 4 + 1] * tap,
             row + slot[a * 4 + 2] * tap, row + slot[a * 4 + 3] * tap, out_c);
    }
  }
}

// tiles[q][t][c] = (Bᵀ d B)[a][b] for the 4×4 input tile d of the chunk's
// tile t (q = a·4 + b); rows of `zeros` stand in for pixels outside the input
// and for the tiles past `count` that pad the last chunk; `rows` holds
// 16·in_c floats.
__attribute__((target_clones("avx512f", "avx2", "default")))
void InputTransform(const WinogradShape& s, const float* in, int64_t first, int64_t count,
                    int64_t chunk, const float* zeros, float* rows, float* tiles) {
  const int64_t tiles_h = s.TilesH(), tiles_w = s.TilesW(), c_size = s.in_c;
  const int64_t plane = chunk * c_size;
  for (int64_t t = 0; t < chunk; ++t) {
    const float* d[16];
    const int64_t tile = first + t;
    const int64_t n = tile / (tiles_h * tiles_w), th = tile / tiles_w % tiles_h,
                  tw = tile % tiles_w;
    for (int64_t a = 0; a < 4; ++a) {
      for (int64_t b = 0; b < 4; ++b) {
        const int64_t h = 2 * th - s.pad_top + a, w = 2 * tw - s.pad_left + b;
        const bool inside = t < count && h >= 0 && h < s.in_h && w >= 0 && w < s.in_w;
        d[a * 4 + b] = inside ? in + ((n * s.in_h + h) * s.in_w + w) * c_size : zeros;
      }
    }
    float* e = rows;  // (Bᵀ d)[a][b] at e + (4a + b)·c_size
    for (int64_t b = 0; b < 4; ++b)
      ApplyBt(d[b], d[4 + b], d[8 + b], d[12 + b], e + b * c_size, e + (4 + b) * c_size,
              e + (8 + b) * c_size, e + (12 + b) * c_size, c_size);
    float* v = tiles + t * c_size;
    for (int64_t a = 0; a < 4; ++a) {
      const float* ea = e + 4 * a * c_size;
      float* va = v + 4 * a * plane;
      ApplyBt(ea, ea + c_size, ea + 2 * c_size, ea + 3 * c_size, va, va + plane, va + 2 * plane,
              va + 3 * plane, c_size);
    }
  }
}

// out's 2×2 tiles Aᵀ m A from the chunk's products m (16 × chunk × out_c);
// pixels past the output's edge go to `discard`; `rows` holds 8·out_c floats.
__attribute__((target_clones("avx512f", "avx2", "default")))
void OutputTransform(const WinogradShape& s, const float* products, int64_t first,
                     int64_t count, int64_t chunk, float* discard, float* rows, float* out) {
  const int64_t tiles_h = s.TilesH(), tiles_w = s.TilesW(), k_size = s.out_c;
  const int64_t plane = chunk * k_size;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = first + t;
    const int64_t n = tile / (tiles_h * tiles_w), th = tile / tiles_w % tiles_h,
                  tw = tile % tiles_w;
    float* y[2][2];
    for (int64_t a = 0; a < 2; ++a) {
      for (int64_t b = 0; b < 2; ++b) {
        const int64_t h = 2 * th + a, w = 2 * tw + b;
        y[a][b] = h < s.out_h && w < s.out_w ? out + ((n * s.out_h + h) * s.out_w + w) * k_size
                                             : discard;
      }
    }
    const float* m = products + t * k_size;  // m[i][b] at m + (4i + b)·plane
    float* o = rows;                         // (Aᵀ m)[a][b] at o + (4a + b)·k_size
    for (int64_t b = 0; b < 4; ++b)
      ApplyAt(m + b * plane, m + (4 + b) * plane, m + (8 + b) * plane, m + (12 + b) * plane,
              o + b * k_size, o + (4 + b) * k_size, k_size);
    for (int64_t a = 0; a < 2; ++a) {
      const float* oa = o + 4 * a * k_size;
      ApplyAt(oa, oa + k_size, oa + 2 * k_size, oa + 3 * k_size, y[a][0], y[a][1], k_size);
    }
  }
}

// grads[q][t][k] = (A e Aᵀ)[a][b] for the 2×2 output-gradient tile e of the
// chunk's tile t (q = a·4 + b); rows of `zeros` stand in for pixels past the
// output's edge and for the tiles past `count`; `rows` holds 8·out_c floats.
__attribute__((target_clones("avx512f", "avx2", "default")))
void GradTransform(const WinogradShape& s, const float* dy, int64_t first, int64_t count,
                   int64_t chunk, const float* zeros, float* rows, float* grads) {
  const int64_t tiles_h = s.TilesH(), tiles_w = s.TilesW(), k_size = s.out_c;
  const int64_t plane = chunk * k_size;
  for (int64_t t = 0; t < chunk; ++t) {
    const float* e[2][2];
    const int64_t tile = first + t;
    const int64_t n = tile / (tiles_h * tiles_w), th = tile / tiles_w % tiles_h,
                  tw = tile % tiles_w;
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t h = 2 * th + i, w = 2 * tw + j;
        const bool inside = t < count && h < s.out_h && w < s.out_w;
        e[i][j] = inside ? dy + ((n * s.out_h + h) * s.out_w + w) * k_size : zeros;
      }
    }
    float* r = rows;  // (e Aᵀ)[i][b] at r + (4i + b)·k_size
    for (int64_t i = 0; i < 2; ++i)
      ApplyA(e[i][0], e[i][1], r + 4 * i * k_size, r + (4 * i + 1) * k_size,
             r + (4 * i + 2) * k_size, r + (4 * i + 3) * k_size, k_size);
    float* v = grads + t * k_size;
    for (int64_t b = 0; b < 4; ++b)
      ApplyA(r + b * k_size, r + (4 + b) * k_size, v + b * plane, v + (4 + b) * plane,
             v + (8 + b) * plane, v + (12 + b) * plane, k_size);
  }
}

// hwio (3×3×C×K) = Gᵀ u G for u = the transformed kernel gradient (16 × C ×
// K); `rows` holds 12·K floats.
__attribute__((target_clones("avx512f", "avx2", "default")))
void KernelGradTransform(const float* u, int64_t in_c, int64_t out_c, float* rows,
                         float* hwio) {
  const int64_t tap = in_c * out_c;
  for (int64_t c = 0; c < in_c; ++c) {
    const float* uc = u + c * out_c;  // u[a][b] at uc + (4a + b)·tap
    float* r = rows;                  // (Gᵀ u)[i][b] at r + (4i + b)·out_c
    for (int64_t b = 0; b < 4; ++b)
      ApplyGt(uc + b * tap, uc + (4 + b) * tap, uc + (8 + b) * tap, uc + (12 + b) * tap,
              r + b * out_c, r + (4 + b) * out_c, r + (8 + b) * out_c, out_c);
    float* w = hwio + c * out_c;  // tap (i, j) at w + (3i + j)·tap
    for (int64_t i = 0; i < 3; ++i) {
      const float* ri = r + 4 * i * out_c;
      ApplyGt(ri, ri + out_c, ri + 2 * out_c, ri + 3 * out_c, w + 3 * i * tap,
              w + (3 * i + 1) * tap, w + (3 * i + 2) * tap, out_c);
    }
  }
}

// Runs worker->Run(i) for i in [0, chunks) over the OpenMP threads, each with
// its own worker from make(). Nothing may leave an OpenMP region by exception
// and every thread must reach the loop's closing barrier, so failures are
// recorded and rethrown after the region.
template <typename Make>
void ForEachChunk(int64_t chunks, Make make) {
  std::string error;
#pragma omp parallel
  {
    std::string failure;
    decltype(make()) worker;
    try {
      worker = make();
    } catch (const std::exception& e) {
      failure = e.what();
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < chunks; ++i) {
      if (!failure.empty()) continue;
      try {
        worker->Run(i);
      } catch (const std::exception& e) {
        failure = e.what();
      }
    }
    if (!failure.empty()) {
#pragma omp critical
      error = failure;
    }
  }
  if (!error.empty()) throw std::runtime_error(error);
}

// A thread's buffers for a chunk of tiles: the transformed input tiles, the
// matmul's scratch, a row of zeros followed by one for discarded pixels, and
// the rows the transforms work in.
struct ChunkBuffers {
  ChunkBuffers(const WinogradShape& s, const memory::desc& tiles_desc,
               const memory::desc& scratch_desc)
      : edge(std::max(s.in_c, s.out_c)) {
    thread_local ThreadBuffer tile_buffer, scratch_buffer, edge_buffer, row_buffer;
    tiles = static_cast<float*>(tile_buffer.Get(tiles_desc.get_size()));
    scratch = scratch_buffer.Get(scratch_desc.get_size());
    zeros = static_cast<float*>(edge_buffer.Get(2 * edge * sizeof(float)));
    std::fill(zeros, zeros + edge, 0.0f);
    rows = static_cast<float*>(row_buffer.Get(16 * edge * sizeof(float)));
  }

  float* Discard() const { return zeros + edge; }

  const int64_t edge;  // floats in a row: the larger channel count
  float *tiles, *zeros, *rows;
  void* scratch;
};

// Chunk i's tiles: count of them from first.
struct TileRange {
  TileRange(const WinogradShape& s, int64_t i)
      : chunk(s.ChunkTiles()), first(i * chunk), count(std::min(chunk, s.Tiles() - first)) {}
  const int64_t chunk, first, count;
};

// One OpenMP thread's buffers and matmul arguments for the conv's chunks.
class WinogradWorker {
 public:
  WinogradWorker(const WinogradShape& s, const WinogradPlan& plan, const memory& kernel,
                 const float* in, float* out)
      : shape_(s), plan_(plan), in_(in), out_(out), buffers_(s, plan.tiles, plan.scratch) {
    thread_local ThreadBuffer products;
    products_ = static_cast<float*>(products.Get(plan.products.get_size()));
    args_ = {{DNNL_ARG_SRC, memory(plan.tiles, Engine(), buffers_.tiles)},
             {DNNL_ARG_WEIGHTS, kernel},
             {DNNL_ARG_DST, memory(plan.products, Engine(), products_)},
             {DNNL_ARG_SCRATCHPAD, memory(plan.scratch, Engine(), buffers_.scratch)}};
  }

  // The output tiles of chunk i.
  void Run(int64_t i) {
    thread_local dnnl::stream stream(Engine());
    const TileRange r(shape_, i);
    InputTransform(shape_, in_, r.first, r.count, r.chunk, buffers_.zeros, buffers_.rows,
                   buffers_.tiles);
    plan_.matmul.execute(stream, args_);  // single-threaded inside the parallel region
    stream.wait();
    OutputTransform(shape_, products_, r.first, r.count, r.chunk, buffers_.Discard(),
                    buffers_.rows, out_);
  }

 private:
  const WinogradShape& shape_;
  const WinogradPlan& plan_;
  const float* in_;
  float* out_;
  ChunkBuffers buffers_;
  float* products_;
  std::unordered_map<int, memory> args_;
};

// out = the stride-1 3×3 conv of `in` with the HWIO kernel (C_in × C_out of
// the forward conv), or with it rotated and transposed for an input gradient.
void RunWinograd(const WinogradShape& s, const float* hwio, bool rotated, const float* in,
                 float* out) {
  const int64_t chunk = s.ChunkTiles();
  const auto plan = Cached<WinogradPlan>(
      "winograd," + std::to_string(chunk) + "," + std::to_string(s.in_c) + "," +
          std::to_string(s.out_c) + "," + std::to_string(rotated),
      [&] { return BuildWinograd(chunk, s.in_c, s.out_c, rotated); });
  thread_local dnnl::stream stream(Engine());
  thread_local ThreadBuffer user_buffer, kernel_buffer, rows_buffer;
  void* user = user_buffer.Get(plan->kernel_user.get_size());
  const int64_t kernel_in = rotated ? s.out_c : s.in_c, kernel_out = rotated ? s.in_c : s.out_c;
  KernelTransform(hwio, kernel_in, kernel_out, rotated,
                  static_cast<float*>(rows_buffer.Get(12 * kernel_out * sizeof(float))),
                  static_cast<float*>(user));
  memory user_kernel(plan->kernel_user, Engine(), user);
  memory kernel(plan->kernel, Engine(), kernel_buffer.Get(plan->kernel.get_size()));
  plan->kernel_reorder.execute(stream, user_kernel, kernel);
  stream.wait();
  ForEachChunk((s.Tiles() + chunk - 1) / chunk, [&] {
    return std::make_unique<WinogradWorker>(s, *plan, kernel, in, out);
  });
}

// The 16 batched matmuls u[q] += V[q]ᵀ · E[q] of the kernel gradient over a
// chunk: V (16 × chunk × C_in) the input tiles, E (16 × chunk × C_out) the
// output-gradient tiles, u (16 × C_in × C_out) a thread's running sum.
struct WinogradGradPlan {
  dnnl::matmul matmul;
  memory::desc tiles, grads, sums, scratch;
};

WinogradGradPlan BuildWinogradGrad(int64_t chunk, int64_t in_c, int64_t out_c) {
  const auto f32 = memory::data_type::f32;
  const memory::desc tiles({16, in_c, chunk}, f32, memory::dims{chunk * in_c, 1, in_c});
  const memory::desc grads({16, chunk, out_c}, f32, memory::format_tag::abc);
  const memory::desc sums({16, in_c, out_c}, f32, memory::format_tag::abc);
  dnnl::post_ops accumulate;
  accumulate.append_sum();
  dnnl::primitive_attr attr = UserScratchpad();
  attr.set_post_ops(accumulate);
  const dnnl::matmul::primitive_desc desc(Engine(), tiles, grads, sums, attr);
  return {dnnl::matmul(desc), tiles, grads, sums, desc.scratchpad_desc()};
}

// One OpenMP thread's buffers, matmul arguments and running sum for the
// kernel gradient's chunks; the sum is registered in sums[thread].
class WinogradGradWorker {
 public:
  WinogradGradWorker(const WinogradShape& s, const WinogradGradPlan& plan, const float* x,
                     const float* dy, std::vector<float*>& sums)
      : shape_(s), plan_(plan), x_(x), dy_(dy), buffers_(s, plan.tiles, plan.scratch) {
    thread_local ThreadBuffer grads, sum;
    grads_ = static_cast<float*>(grads.Get(plan.grads.get_size()));
    auto* sum_data = static_cast<float*>(sum.Get(plan.sums.get_size()));
    std::fill(sum_data, sum_data + plan.sums.get_size() / sizeof(float), 0.0f);
    sums[omp_get_thread_num()] = sum_data;
    args_ = {{DNNL_ARG_SRC, memory(plan.tiles, Engine(), buffers_.tiles)},
             {DNNL_ARG_WEIGHTS, memory(plan.grads, Engine(), grads_)},
             {DNNL_ARG_DST, memory(plan.sums, Engine(), sum_data)},
             {DNNL_ARG_SCRATCHPAD, memory(plan.scratch, Engine(), buffers_.scratch)}};
  }

  // Adds chunk i's products to the running sum.
  void Run(int64_t i) {
    thread_local dnnl::stream stream(Engine());
    const TileRange r(shape_, i);
    InputTransform(shape_, x_, r.first, r.count, r.chunk, buffers_.zeros, buffers_.rows,
                   buffers_.tiles);
    GradTransform(shape_, dy_, r.first, r.count, r.chunk, buffers_.zeros, buffers_.rows,
                  grads_);
    plan_.matmul.execute(stream, args_);  // single-threaded inside the parallel region
    stream.wait();
  }

 private:
  const WinogradShape& shape_;
  const WinogradGradPlan& plan_;
  const float *x_, *dy_;
  ChunkBuffers buffers_;
  float* grads_;
  std::unordered_map<int, memory> args_;
};

// dw of the stride-1 3×3 conv of x (shape s) from dy: with M = U ⊙ V per tile
// and y = Aᵀ M A, ∂L/∂U = Σ_tiles (A dy Aᵀ) ⊙ V and dw = Gᵀ (∂L/∂U) G. Each
// OpenMP thread sums its chunks; the threads' sums are added in thread order.
void RunWinogradKernelGrad(const WinogradShape& s, const float* x, const float* dy,
                           float* dw) {
  const int64_t chunk = s.ChunkTiles();
  const auto plan = Cached<WinogradGradPlan>(
      "winograd_dw," + std::to_string(chunk) + "," + std::to_string(s.in_c) + "," +
          std::to_string(s.out_c),
      [&] { return BuildWinogradGrad(chunk, s.in_c, s.out_c); });
  std::vector<float*> sums(omp_get_max_threads(), nullptr);
  ForEachChunk((s.Tiles() + chunk - 1) / chunk, [&] {
    return std::make_unique<WinogradGradWorker>(s, *plan, x, dy, sums);
  });
  float* total = sums[0];
  const int64_t sum_floats = 16 * s.in_c * s.out_c;
  for (size_t t = 1; t < sums.size(); ++t)
    if (sums[t] != nullptr)
      for (int64_t i = 0; i < sum_floats; ++i) total[i] += sums[t][i];
  thread_local ThreadBuffer rows;
  KernelGradTransform(total, s.in_c, s.out_c,
                      static_cast<float*>(rows.Get(12 * s.out_c * sizeof(float))), dw);
}

WinogradShape ForwardShape(const Geometry& g) {
  return {g.x[0], g.x[1], g.x[2], g.x[3], g.y[1], g.y[2], g.y[3], g.pad_low[0], g.pad_low[1]};
}

// dx[h] = Σ_i dy[h + pad − i]·w[i] = Σ_i dy[h − (2 − pad) + i]·w[2 − i].
WinogradShape InputGradShape(const Geometry& g) {
  return {g.x[0], g.y[1], g.y[2], g.y[3], g.x[1], g.x[2], g.x[3], 2 - g.pad_low[0],
          2 - g.pad_low[1]};
}

// f() as an FFI result: any exception becomes an internal error naming it.
template <typename F>
ffi::Error Guarded(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("cvx oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(Tensor x, Tensor w, Result y, Ints strides, Ints pads, Ints dilation,
                   int64_t groups) {
  const Geometry g = MakeGeometry(Dims(x.dimensions()), Dims(w.dimensions()),
                                  Dims(y->dimensions()), strides, pads, dilation, groups);
  return Guarded([&] {
    if (UsesMatmul(g))
      PointwisePass(Pass::kForward, g, x.typed_data(), w.typed_data(), y->typed_data());
    else if (UsesDepthwise(g))
      cvx::DepthwiseForward(Depthwise(g), x.typed_data(), w.typed_data(), y->typed_data());
    else if (UsesSingleChannel(g))
      cvx::SingleChannelForward(SingleChannel(g), x.typed_data(), w.typed_data(),
                                y->typed_data());
    else if (UsesWinograd(g))
      RunWinograd(ForwardShape(g), w.typed_data(), false, x.typed_data(), y->typed_data());
    else
      Execute(Pass::kForward, g, x.untyped_data(), w.untyped_data(), y->untyped_data());
  });
}

ffi::Error BackwardData(Tensor dy, Tensor w, Result dx, Ints strides, Ints pads, Ints dilation,
                        int64_t groups) {
  const Geometry g = MakeGeometry(Dims(dx->dimensions()), Dims(w.dimensions()),
                                  Dims(dy.dimensions()), strides, pads, dilation, groups);
  return Guarded([&] {
    if (UsesMatmul(g))
      PointwisePass(Pass::kBackwardData, g, dy.typed_data(), w.typed_data(), dx->typed_data());
    else if (UsesDepthwise(g))
      cvx::DepthwiseInputGrad(Depthwise(g), dy.typed_data(), w.typed_data(), dx->typed_data());
    else if (UsesSingleChannelInputGrad(g))
      cvx::SingleChannelInputGrad(SingleChannel(g), dy.typed_data(), w.typed_data(),
                                  dx->typed_data());
    else if (UsesCol2Im(g))
      BackwardDataCol2Im(g, dy.typed_data(), w.typed_data(), dx->typed_data());
    else if (UsesNarrowInputInputGrad(g))
      cvx::NarrowInputInputGrad(NarrowInput(g), dy.typed_data(), w.typed_data(),
                                dx->typed_data());
    else if (UsesWinograd(g))
      RunWinograd(InputGradShape(g), w.typed_data(), true, dy.typed_data(), dx->typed_data());
    else
      Execute(Pass::kBackwardData, g, dy.untyped_data(), w.untyped_data(), dx->untyped_data());
  });
}

ffi::Error BackwardWeights(Tensor x, Tensor dy, Result dw, Ints strides, Ints pads,
                           Ints dilation, int64_t groups) {
  const Geometry g = MakeGeometry(Dims(x.dimensions()), Dims(dw->dimensions()),
                                  Dims(dy.dimensions()), strides, pads, dilation, groups);
  return Guarded([&] {
    if (UsesMatmul(g))
      PointwisePass(Pass::kBackwardWeights, g, x.typed_data(), dy.typed_data(), dw->typed_data());
    else if (UsesNarrowInputKernelGrad(g))
      cvx::NarrowInputKernelGrad(NarrowInput(g), x.typed_data(), dy.typed_data(),
                                 dw->typed_data());
    else if (UsesSingleChannel(g))
      cvx::SingleChannelKernelGrad(SingleChannel(g), x.typed_data(), dy.typed_data(),
                                   dw->typed_data());
    else if (UsesDepthwise(g))
      cvx::DepthwiseKernelGrad(Depthwise(g), x.typed_data(), dy.typed_data(), dw->typed_data());
    else if (UsesDepthwiseKernelGrad(g))
      DepthwiseKernelGrad(g, x.typed_data(), dy.typed_data(), dw->typed_data());
    else if (UsesWinograd(g))
      RunWinogradKernelGrad(ForwardShape(g), x.typed_data(), dy.typed_data(), dw->typed_data());
    else
      Execute(Pass::kBackwardWeights, g, x.untyped_data(), dy.untyped_data(), dw->untyped_data());
  });
}

}  // namespace

#define CVX_ONEDNN_HANDLER(symbol, impl)                               \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(symbol, impl,                          \
                                ffi::Ffi::Bind()                       \
                                    .Arg<Tensor>()                     \
                                    .Arg<Tensor>()                     \
                                    .Ret<Tensor>()                     \
                                    .Attr<Ints>("strides")             \
                                    .Attr<Ints>("pads")                \
                                    .Attr<Ints>("dilation")            \
                                    .Attr<int64_t>("groups"));

CVX_ONEDNN_HANDLER(CvxOneDnnConvForward, Forward)
CVX_ONEDNN_HANDLER(CvxOneDnnConvBackwardData, BackwardData)
CVX_ONEDNN_HANDLER(CvxOneDnnConvBackwardWeights, BackwardWeights)
