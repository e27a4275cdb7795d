"""Data sets held in memory (`load`) and the batches the training loop draws from them."""

from jaxclean.data.sources import Dataset, Split, load

__all__ = ["Dataset", "Split", "load"]
