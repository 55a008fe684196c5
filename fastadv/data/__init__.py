from fastadv.data.rendered import RenderedObjects

__all__ = ["RenderedObjects"]
