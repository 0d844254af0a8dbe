"""Test-session setup.

``SCIPY_ARRAY_API=1`` must be set before scipy is first imported: without it,
scikit-learn's estimator checks skip their array-API input check (for our
estimators it runs with the NumPy namespace only).
"""
import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")
