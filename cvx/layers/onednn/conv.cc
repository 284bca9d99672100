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
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
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

std::shared_ptr<const Plan> CachedPlan(Pass pass, const Geometry& g) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const Plan>> plans;
  const std::string key = g.Key(pass);
  std::lock_guard<std::mutex> lock(mutex);
  auto& plan = plans[key];
  if (!plan) plan = std::make_shared<const Plan>(Build(pass, g));
  return plan;
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

ffi::Error Execute(Pass pass, const Geometry& g, void* in0, void* in1, void* out) {
  try {
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
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("cvx oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(Tensor x, Tensor w, Result y, Ints strides, Ints pads, Ints dilation,
                   int64_t groups) {
  const Geometry g = MakeGeometry(Dims(x.dimensions()), Dims(w.dimensions()),
                                  Dims(y->dimensions()), strides, pads, dilation, groups);
  return Execute(Pass::kForward, g, x.untyped_data(), w.untyped_data(), y->untyped_data());
}

ffi::Error BackwardData(Tensor dy, Tensor w, Result dx, Ints strides, Ints pads, Ints dilation,
                        int64_t groups) {
  const Geometry g = MakeGeometry(Dims(dx->dimensions()), Dims(w.dimensions()),
                                  Dims(dy.dimensions()), strides, pads, dilation, groups);
  return Execute(Pass::kBackwardData, g, dy.untyped_data(), w.untyped_data(),
                 dx->untyped_data());
}

ffi::Error BackwardWeights(Tensor x, Tensor dy, Result dw, Ints strides, Ints pads,
                           Ints dilation, int64_t groups) {
  const Geometry g = MakeGeometry(Dims(x.dimensions()), Dims(dw->dimensions()),
                                  Dims(dy.dimensions()), strides, pads, dilation, groups);
  return Execute(Pass::kBackwardWeights, g, x.untyped_data(), dy.untyped_data(),
                 dw->untyped_data());
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
