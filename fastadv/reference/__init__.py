"""What each op means: its pure-PyTorch definition (the "torch" backend, against which every
kernel is tested), the metadata of its outputs (the fake kernels) and the constants every backend
shares. Imports nothing of fastadv but `fastadv._tensors`, so that the public ops
(`fastadv.ops`) and the kernels of every backend (`fastadv.triton`, the C++ extension) can all
build on it.
"""
