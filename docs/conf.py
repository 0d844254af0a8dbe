"""Sphinx configuration: the API reference from the NumPy docstrings (numpydoc), the user guide in
reStructuredText, and the design notes in Markdown (myst-parser). Built by .ci/run with warnings as
errors: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``."""
import nlstm

project = "nlstm"
author = "the nlstm developers"
copyright = "2026, the nlstm developers"
release = version = nlstm.__version__

extensions = ["sphinx.ext.autodoc", "numpydoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

autodoc_typehints = "none"
numpydoc_show_class_members = False  # the API page lists the methods it documents
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"nlstm {release}"
html_theme_options = {"description": "LSTM networks in Numba kernels, as scikit-learn estimators"}
