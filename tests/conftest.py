import os

import torch

# Without a GPU, Triton kernels run in its interpreter on CPU tensors. Set before fastadv (and so
# triton) is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
