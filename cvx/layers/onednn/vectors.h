// 16-lane float vectors and the blocking helpers shared by cvx's direct
// AVX-512 conv loops (single_channel.cc, narrow_input.cc, depthwise.cc);
// PerThread also serves separable_u8.cc, SumChunks conv.cc. Code using Vec must
// be compiled for AVX-512 (a target attribute on the function that inlines it).
#ifndef CVX_LAYERS_ONEDNN_VECTORS_H_
#define CVX_LAYERS_ONEDNN_VECTORS_H_

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte vectors pass only between inlined code

namespace cvx {
namespace vectors {

constexpr int64_t kLanes = 16;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
typedef float UnalignedVec __attribute__((vector_size(kLanes * sizeof(float)), aligned(4)));

// Vectors live in registers and on the stack only: in memory they are floats
// (a 64-byte vector type is only 16-byte aligned in code built without AVX-512).
inline Vec Load(const float* p) { return *reinterpret_cast<const UnalignedVec*>(p); }
inline void Store(float* p, Vec v) { *reinterpret_cast<UnalignedVec*>(p) = v; }

// The sum of v's lanes, halving the vector at each step.
inline float Sum(Vec v) {
  typedef float Half __attribute__((vector_size(kLanes / 2 * sizeof(float))));
  typedef float Quarter __attribute__((vector_size(kLanes / 4 * sizeof(float))));
  const Half h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                 __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const Quarter q = __builtin_shufflevector(h, h, 0, 1, 2, 3) +
                    __builtin_shufflevector(h, h, 4, 5, 6, 7);
  return (q[0] + q[2]) + (q[1] + q[3]);
}

inline int64_t RoundUp(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// f(std::integral_constant<int, count>{}) for 1 ≤ count ≤ kMax.
template <int kMax, typename F>
inline void WithBlock(int64_t count, F f) {
  if constexpr (kMax > 0) {
    if (count == kMax)
      f(std::integral_constant<int, kMax>{});
    else
      WithBlock<kMax - 1>(count, f);
  }
}

// f(std::integral_constant<int, i>{}) for i = 0, …, N − 1, unrolled: arrays
// of vectors indexed by i stay in registers.
template <typename F, int... I>
inline void UnrollSequence(F& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, typename F>
inline void Unroll(F f) {
  UnrollSequence(f, std::make_integer_sequence<int, N>{});
}

// f(first, count) over [0, total) in blocks of at most kMax.
template <int kMax, typename F>
inline void InBlocks(int64_t total, F f) {
  for (int64_t first = 0; first < total; first += kMax)
    WithBlock<kMax>(std::min<int64_t>(kMax, total - first),
                    [&](auto count) { f(first, count); });
}

// f(first, count) over [0, total) in the fewest blocks of at most kMax, of
// near-equal sizes (10 in blocks of ≤ 8: 5 and 5, not 8 and 2).
template <int kMax, typename F>
inline void InEvenBlocks(int64_t total, F f) {
  const int64_t blocks = (total + kMax - 1) / kMax;
  const int64_t size = (total + blocks - 1) / blocks;
  for (int64_t first = 0; first < total; first += size)
    WithBlock<kMax>(std::min(size, total - first), [&](auto count) { f(first, count); });
}

// out = the sum of `chunks` arrays of `size` floats, added in chunk order
// (kernel gradients sum fixed chunks of images so their bits do not depend
// on the thread count).
inline void SumChunks(const float* sums, int64_t chunks, int64_t size, float* out) {
  std::fill(out, out + size, 0.0f);
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    for (int64_t i = 0; i < size; ++i) out[i] += sums[chunk * size + i];
}

// Per-thread scratch of `count` Ts (sizeof(T) dividing 64) per OpenMP thread,
// allocated before a parallel loop (so allocation fails outside it) and split
// by thread, each part on its own cache lines: threads writing one line stall
// each other (false sharing made a grey erosion 2× slower on two cores).
template <typename T>
class PerThread {
 public:
  explicit PerThread(int64_t count)
      : stride_(RoundUpTo(count, kLine / sizeof(T))),
        data_(omp_get_max_threads() * stride_ + kLine / sizeof(T)) {}

  T* Mine() {
    const auto base = reinterpret_cast<uintptr_t>(data_.data());
    const int64_t skip = (kLine - base % kLine) % kLine / sizeof(T);
    return data_.data() + skip + omp_get_thread_num() * stride_;
  }

 private:
  static constexpr int64_t kLine = 64;
  static int64_t RoundUpTo(int64_t n, int64_t step) { return (n + step - 1) / step * step; }
  int64_t stride_;
  std::vector<T> data_;
};

}  // namespace vectors
}  // namespace cvx

#endif  // CVX_LAYERS_ONEDNN_VECTORS_H_
