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

}  // namespace

int main() {
  test_round_half_even();
  test_sign_step_value();
  if (failures == 0) std::printf("sign_step math: all passed\n");
  return failures == 0 ? 0 : 1;
}
