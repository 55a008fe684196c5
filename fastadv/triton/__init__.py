"""Triton kernels, one op a file. Imported lazily: `import fastadv` does not import triton."""
