// Tests of the nearest-fill passes (nearest_fill_math.h) on the CPU, without torch (run by ctest):
// the two passes against brute force, with labels that name their own pixel so that the chosen
// source, and so the tie rule, is checked exactly.
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/nearest_fill_math.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what, int h, int w, int pixel) {
  if (!ok && failures < 20) std::printf("FAIL %s (%dx%d map, pixel %d)\n", what, h, w, pixel);
  failures += !ok;
}

struct Filled {
  std::vector<int32_t> out;
  std::vector<float> distance;
  bool empty;
};

// Both passes over one h x w image whose label is each pixel's own index.
Filled fill(const std::vector<char>& hidden, int32_t h, int32_t w) {
  std::vector<int32_t> labels(h * w), site(h * w), stack(2 * h);
  for (int i = 0; i < h * w; ++i) labels[i] = i;
  Filled f{std::vector<int32_t>(h * w), std::vector<float>(h * w), false};
  fastadv::NearestFillArgs a{labels.data(),
                             reinterpret_cast<const bool*>(hidden.data()),
                             f.out.data(),
                             f.distance.data(),
                             &f.empty,
                             site.data(),
                             fastadv::LabelType::Int32,
                             1,
                             h,
                             w};
  for (int32_t r = 0; r < h; ++r) fastadv::row_sites(a, r);
  for (int32_t c = 0; c < w; ++c) {
    fastadv::column_fill<int32_t>(a, 0, c, fastadv::Strided<int32_t>{stack.data(), 1},
                                  fastadv::Strided<int32_t>{stack.data() + h, 1});
  }
  return f;
}

// The first non-hidden pixel in row-major order at the least squared distance from pixel p.
int brute_source(const std::vector<char>& hidden, int32_t h, int32_t w, int p) {
  int best = -1, best_d2 = 0;
  for (int i = 0; i < h * w; ++i) {
    if (hidden[i]) continue;
    const int dy = i / w - p / w, dx = i % w - p % w, d2 = dy * dy + dx * dx;
    if (best < 0 || d2 < best_d2) best = i, best_d2 = d2;
  }
  return best;
}

void check_map(const std::vector<char>& hidden, int32_t h, int32_t w) {
  const Filled f = fill(hidden, h, w);
  bool all_hidden = true;
  for (char v : hidden) all_hidden = all_hidden && v;
  expect(f.empty == all_hidden, "empty flag", h, w, -1);
  for (int p = 0; p < h * w; ++p) {
    const int want = all_hidden ? p : brute_source(hidden, h, w, p);
    expect(f.out[p] == want, "source (tie rule)", h, w, p);
    const int dy = want / w - p / w, dx = want % w - p % w;
    const float d = all_hidden ? INFINITY : fastadv::euclidean(dy, dx);
    expect(f.distance[p] == d, "distance", h, w, p);
  }
}

void test_nearer_site() {
  using fastadv::kNoSite;
  using fastadv::nearer_site;
  expect(nearer_site(2, 6, 4) == 2, "equidistant: the left", 0, 0, 4);
  expect(nearer_site(2, 5, 4) == 5, "right nearer", 0, 0, 4);
  expect(nearer_site(kNoSite, 5, 4) == 5, "no left", 0, 0, 4);
  expect(nearer_site(2, kNoSite, 4) == 2, "no right", 0, 0, 4);
  expect(nearer_site(kNoSite, kNoSite, 4) == kNoSite, "none", 0, 0, 4);
}

// The CUDA kernel's pass 1 (one warp a row, ballots of 32 columns), lane by lane on the CPU.
std::vector<int32_t> warp_row_sites(const std::vector<char>& hidden, int32_t n) {
  std::vector<int32_t> site(n);
  auto ballot = [&](int32_t x0) {
    uint32_t visible = 0;
    for (int32_t lane = 0; lane < 32 && x0 + lane < n; ++lane) {
      visible |= uint32_t{hidden[x0 + lane] == 0} << lane;
    }
    return visible;
  };
  int32_t before = fastadv::kNoSite;
  for (int32_t x0 = 0; x0 < n; x0 += 32) {
    const uint32_t visible = ballot(x0);
    for (int32_t lane = 0; lane < 32 && x0 + lane < n; ++lane) {
      site[x0 + lane] = fastadv::last_visible(visible, lane, x0, before);
    }
    before = fastadv::last_visible(visible, 31, x0, before);
  }
  int32_t after = fastadv::kNoSite;
  for (int32_t x0 = (n - 1) / 32 * 32; x0 >= 0; x0 -= 32) {
    const uint32_t visible = ballot(x0);
    for (int32_t lane = 0; lane < 32 && x0 + lane < n; ++lane) {
      const int32_t x = x0 + lane;
      site[x] = fastadv::nearer_site(site[x], fastadv::first_visible(visible, lane, x0, after), x);
    }
    after = fastadv::first_visible(visible, 0, x0, after);
  }
  return site;
}

void test_warp_row_sites() {
  std::mt19937 rng(11);
  for (int32_t n : {1, 5, 31, 32, 33, 64, 95, 200}) {
    for (double p : {0.0, 0.5, 0.97, 1.0}) {
      std::bernoulli_distribution hide(p);
      for (int rep = 0; rep < 30; ++rep) {
        std::vector<char> hidden(n);
        for (auto& v : hidden) v = hide(rng);
        std::vector<int32_t> want(n);
        fastadv::nearest_in_row(reinterpret_cast<const bool*>(hidden.data()), want.data(), n);
        const std::vector<int32_t> got = warp_row_sites(hidden, n);
        for (int32_t x = 0; x < n; ++x) expect(got[x] == want[x], "warp pass 1", 1, n, x);
      }
    }
  }
}

void test_separation() {
  // Parabolas (x - 0)^2 + 0 and (x - 4)^2 + 0 meet at 2: row 2 still belongs to the first.
  expect(fastadv::separation(0, 0, 4, 0) == 2, "integer intersection", 0, 0, 0);
  expect(fastadv::separation(0, 0, 3, 0) == 1, "intersection 1.5 rounds down", 0, 0, 0);
  expect(fastadv::separation(0, 9, 3, 0) == 0, "intersection 0", 0, 0, 0);
}

// Symmetric shapes put many non-hidden pixels at one distance: the tie rule decides.
void test_symmetric() {
  for (int n : {1, 2, 3, 5, 8, 11}) {
    std::vector<char> hidden(n * n, 1);
    hidden[0] = hidden[n - 1] = hidden[(n - 1) * n] = hidden[n * n - 1] = 0;  // the corners
    check_map(hidden, n, n);
    std::vector<char> ring(n * n, 0);
    for (int r = 1; r + 1 < n; ++r)
      for (int c = 1; c + 1 < n; ++c) ring[r * n + c] = 1;  // a hidden square in a frame
    check_map(ring, n, n);
  }
}

void test_random() {
  std::mt19937 rng(7);
  const int sizes[][2] = {{1, 1}, {1, 9}, {9, 1}, {2, 2}, {7, 13}, {16, 16}, {30, 5}, {3, 40}};
  for (const auto& hw : sizes) {
    for (double p : {0.0, 0.3, 0.9, 0.99, 1.0}) {
      std::bernoulli_distribution hide(p);
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<char> hidden(hw[0] * hw[1]);
        for (auto& v : hidden) v = hide(rng);
        check_map(hidden, hw[0], hw[1]);
      }
    }
  }
}

}  // namespace

int main() {
  test_nearer_site();
  test_separation();
  test_warp_row_sites();
  test_symmetric();
  test_random();
  if (failures == 0) std::printf("nearest_fill math: all passed\n");
  return failures == 0 ? 0 : 1;
}
