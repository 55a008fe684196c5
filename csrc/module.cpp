// fastadv._C: a small pybind11 module with the version, what was built, and the CPU kernels'
// thread count. Each op's schema (torch.ops.fastadv.*) lives beside its host code, csrc/<op>.cpp.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>

#ifndef FASTADV_VERSION
#define FASTADV_VERSION "0.0.0"
#endif
#ifndef FASTADV_CUDA_ARCHS
#define FASTADV_CUDA_ARCHS ""
#endif

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
  info["version"] = FASTADV_VERSION;
#ifdef FASTADV_WITH_CUDA
  info["cuda"] = true;
#else
  info["cuda"] = false;
#endif
  info["cuda_archs"] = FASTADV_CUDA_ARCHS;
  info["parallel"] = at::get_parallel_info();
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastadv compiled kernels; the ops live in torch.ops.fastadv";
  m.attr("__version__") = FASTADV_VERSION;
  m.def("build_info", &build_info, "What this build of the extension contains.");
  m.def("get_num_threads", &at::get_num_threads, "Threads the CPU kernels use.");
  m.def("set_num_threads", &at::set_num_threads, pybind11::arg("n"),
        "Sets the threads the CPU kernels (and torch's intra-op pool) use.");
}
