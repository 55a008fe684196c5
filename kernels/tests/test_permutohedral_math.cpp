// Tests of the permutohedral lattice's math (permutohedral_math.h) on the CPU, without torch (run
// by ctest): every feature's simplex has lattice points for vertices, barycentric weights that
// are non-negative and sum to one, and reproduces the elevated feature as their weighted mean;
// keys survive packing and a neighbour step there and back.
#include <cmath>
#include <cstdio>
#include <random>

#include "kernels/permutohedral_math.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what, int dim, int sample) {
  if (!ok && failures < 20) std::printf("FAIL %s (d = %d, sample %d)\n", what, dim, sample);
  failures += !ok;
}

// The elevation of Adams et al., p. 5: x_j = sum_{k >= j} c_k - j c_{j-1}, c_k = s_k f_k, written
// from the definition rather than from locate_simplex's loop.
template <int D>
void elevate(const double* f, double* x) {
  double c[D];
  for (int k = 0; k < D; ++k) c[k] = f[k] * fastadv::lattice_scale<D, double>(k);
  for (int j = 0; j <= D; ++j) {
    double sum = 0;
    for (int k = j; k < D; ++k) sum += c[k];
    x[j] = sum - (j > 0 ? j * c[j - 1] : 0.0);
  }
}

template <int D>
void check_dimension(std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 4.0);
  for (int sample = 0; sample < 2000; ++sample) {
    double f[D], x[D + 1], mean[D + 1] = {};
    for (double& v : f) v = normal(rng);
    elevate<D>(f, x);
    fastadv::Simplex<D, double> s;
    fastadv::locate_simplex<D, double>(f, s);
    expect(s.in_range, "in range", D, sample);
    double total = 0;
    for (int r = 0; r <= D; ++r) {
      expect(s.weight[r] >= -1e-12, "non-negative weight", D, sample);
      total += s.weight[r];
      const fastadv::LatticeKey<D> key = s.vertex(r, 7);
      expect(key.field(0) == 7, "image field", D, sample);
      int32_t last = 0;
      for (int k = 0; k <= D; ++k) {
        const int32_t c = k < D ? key.coord(k) : -last;
        if (k < D) last += c;
        expect(((c - r) % (D + 1) + (D + 1)) % (D + 1) == 0, "remainder r", D, sample);
        mean[k] += s.weight[r] * c;
      }
      for (int j = 0; j <= D; ++j) {
        const auto there = fastadv::lattice_neighbour(key, j, 1);
        expect(fastadv::lattice_neighbour(there, j, -1) == key, "step there and back", D, sample);
        expect(!(there == key), "a step moves", D, sample);
      }
    }
    expect(std::fabs(total - 1) < 1e-9, "weights sum to one", D, sample);
    for (int k = 0; k <= D; ++k) {
      expect(std::fabs(mean[k] - x[k]) < 1e-6 * (1 + std::fabs(x[k])), "weighted mean", D, sample);
    }
  }
  // Far outside the keys' range, or not a number: reported, and a harmless cell.
  double far[D];
  for (double& v : far) v = 1e9;
  far[0] = NAN;
  fastadv::Simplex<D, double> s;
  fastadv::locate_simplex<D, double>(far, s);
  expect(!s.in_range, "out of range reported", D, -1);
  for (int r = 0; r <= D; ++r) expect(s.weight[r] == 0 && s.rank[r] == r, "harmless cell", D, -1);
}

}  // namespace

int main() {
  std::mt19937 rng(3);
  check_dimension<1>(rng);
  check_dimension<2>(rng);
  check_dimension<3>(rng);
  check_dimension<5>(rng);
  check_dimension<8>(rng);
  if (failures) {
    std::printf("%d failures\n", failures);
    return 1;
  }
  std::printf("permutohedral math: all checks passed\n");
  return 0;
}
