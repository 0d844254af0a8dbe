"""Compute kernels: `cpu` (Numba, parallel over the batch) and the activations they share.

Importing the package puts nlstm's cache locator in place before any kernel is
decorated (`cache_location`): compiled kernels go to the user's cache folder,
never into the installed package.
"""
from .runtime import cache_location

cache_location.install()
