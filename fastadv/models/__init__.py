from fastadv.models import mindseye

__all__ = ["mindseye"]
