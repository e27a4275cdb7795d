"""Data sets (`load`: labels in memory, images in memory or on disk) and views of their images."""

from jaxclean.data.arrays import take
from jaxclean.data.sources import Dataset, Split, load

__all__ = ["Dataset", "Split", "load", "take"]
