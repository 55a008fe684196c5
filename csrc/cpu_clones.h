// FASTADV_WIDE_CLONES before a CPU loop function: gcc also compiles it for AVX2 and AVX-512 (8
// and 16 float lanes rather than SSE2's 4), and the loader picks the CPU's best. For the loops
// that are compute-bound at SSE2's width; other compilers and CPUs get the one default version.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FASTADV_WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FASTADV_WIDE_CLONES
#endif
