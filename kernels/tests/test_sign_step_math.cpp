// Tests of the shared __host__ __device__ math on the CPU, without torch (run by ctest).
#include <cmath>
#include <cstdio>
#include <limits>

#include "kernels/common.h"
#include "kernels/sign_step_math.h"

namespace {

int failures = 0;

void expect_eq(double got, double want, const char* what) {
  if (!(got == want || (std::isnan(got) && std::isnan(want)))) {
    std::printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
    ++failures;
  }
}

void test_round_half_even() {
  using fastadv::round_half_even;
  const float cases[][2] = {{0.5f, 0.f},
                            {1.5f, 2.f},
                            {2.5f, 2.f},
                            {-0.5f, -0.f},
                            {-1.5f, -2.f},
                            {0.49999997f, 0.f},
                            {8388609.f, 8388609.f},
                            {-2.5f, -2.f},
                            {3.7f, 4.f},
                            {-3.2f, -3.f}};
  for (const auto& c : cases) expect_eq(round_half_even(c[0]), c[1], "round_half_even(float)");
  for (int i = -100000; i <= 100000; ++i) {
    const float v = i * 0.37f;
    expect_eq(round_half_even(v), std::nearbyint(v), "round_half_even vs nearbyint");
    expect_eq(round_half_even(double(v)), std::nearbyint(double(v)), "round_half_even(double)");
  }
}

void test_sign_step_value() {
  using fastadv::sign_step_value;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // step moves by the gradient's sign; NaN and 0 gradients do not move the pixel
  expect_eq(sign_step_value(0.5f, 0.5f, 3.f, 0.1f, 1.f, 1.f, 0.f, 1.f, 0.f), 0.6f, "ascent");
  expect_eq(sign_step_value(0.5f, 0.5f, -3.f, 0.1f, 1.f, 1.f, 0.f, 1.f, 0.f), 0.4f, "descent");
  expect_eq(sign_step_value(0.5f, 0.5f, nan, 0.1f, 1.f, 1.f, 0.f, 1.f, 0.f), 0.5f, "NaN grad");
  expect_eq(sign_step_value(0.5f, 0.5f, 0.f, 0.1f, 1.f, 1.f, 0.f, 1.f, 0.f), 0.5f, "zero grad");
  expect_eq(sign_step_value(0.5f, 0.5f, 1.f, 0.1f, 1.f, 0.f, 0.f, 1.f, 0.f), 0.5f, "masked");
  // the eps ball, then the box
  expect_eq(sign_step_value(0.58f, 0.5f, 1.f, 0.1f, 0.05f, 1.f, 0.f, 1.f, 0.f), 0.55f, "eps");
  expect_eq(sign_step_value(0.95f, 0.95f, 1.f, 0.1f, 1.f, 1.f, 0.f, 1.f, 0.f), 1.f, "box");
  expect_eq(sign_step_value(0.5, 0.5, 1.0, 0.3 / 255, 1.0, 1.0, 0.0, 1.0, 1.0 / 255), 0.5,
            "quantum rounds down");
  expect_eq(sign_step_value(0.5, 0.5, 1.0, 0.7 / 255, 1.0, 1.0, 0.0, 1.0, 1.0 / 255),
            0.5 + 1.0 / 255, "quantum rounds up");
}

// The index width of sign_step.cu at its boundary: every index a thread forms must fit.
void test_index_width() {
  using fastadv::fits_int32_indexing;
  const int64_t int_max = 2147483647, grid = int64_t(1) << 28;  // the largest grid it launches
  const auto expect = [](bool got, bool want, const char* what) {
    if (got != want) {
      std::printf("FAIL %s: got %d\n", what, got);
      ++failures;
    }
  };
  expect(fits_int32_indexing(1000, 4, 1024, 0), true, "small");
  // Below INT_MAX elements, but the tail index numel - 1 + grid would pass it: 64-bit.
  expect(fits_int32_indexing(int_max - grid + 1, 1, grid, 0), true, "tail index INT_MAX");
  expect(fits_int32_indexing(int_max - grid + 2, 1, grid, 0), false, "tail index past INT_MAX");
  expect(fits_int32_indexing(int_max - 7, 1, grid, 0), false, "the range of the old bug");
  // 16-byte vectors: the loop index counts vectors, the tail index elements.
  expect(fits_int32_indexing(int_max - grid / 4 + 1, 4, grid / 4, 0), true, "vectors: fits");
  expect(fits_int32_indexing(int_max - grid / 4 + 5, 4, grid / 4, 0), false, "vectors: not");
  expect(fits_int32_indexing(100, 1, 128, int_max), true, "broadcast reach INT_MAX");
  expect(fits_int32_indexing(100, 1, 128, int_max + 1), false, "broadcast reach past INT_MAX");
}

}  // namespace

int main() {
  test_round_half_even();
  test_sign_step_value();
  test_index_width();
  if (failures == 0) std::printf("sign_step math: all passed\n");
  return failures == 0 ? 0 : 1;
}
