"""The public API's docstrings: NumPy format (checked with numpydoc's validator), an Examples
section on every public class and function, and those examples run as doctests."""
import doctest
import importlib
import inspect
import warnings

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

# What the API reference documents: the names each public module exports.
PUBLIC_MODULES = ["nlstm", "nlstm.scale_out", "nlstm.datasets", "nlstm.skl2onnx_converters"]
# examples that need an optional dependency, by module or by object
NEEDS = {"nlstm.scale_out": "dask", "nlstm.onnx_export.to_onnx": "onnx",
         "nlstm.skl2onnx_converters": "skl2onnx"}
# numpydoc's codes enforced: no docstring, parameters missing, unknown or undescribed,
# no Returns section, no Examples section (the last for classes and functions only).
CODES = {"GL08", "PR01", "PR02", "PR07", "RT01"}


def _public_objects():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield f"{obj.__module__}.{obj.__qualname__}", obj, module_name


PUBLIC = list(_public_objects())


def _own_methods(cls):
    """Public methods the class defines or inherits from nlstm (not scikit-learn's)."""
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or not callable(member):
            continue
        if getattr(member, "__module__", "").startswith("nlstm"):
            yield name


def test_the_public_list_is_not_empty():
    names = {name for name, _, _ in PUBLIC}
    assert {"nlstm.layer.LSTM", "nlstm.estimators.LSTMRegressor", "nlstm.persistence.save",
            "nlstm.scale_out.predict_blocks"} <= names, names


@pytest.mark.parametrize("name", [name for name, _, _ in PUBLIC])
def test_public_classes_and_functions_have_numpy_docstrings_with_examples(name):
    errors = [f"{code}: {message}" for code, message in numpydoc_validate.validate(name)["errors"]
              if code in CODES | {"EX01"}]
    assert errors == []


@pytest.mark.parametrize("name", [name for name, obj, _ in PUBLIC if inspect.isclass(obj)])
def test_public_methods_have_numpy_docstrings(name):
    cls = numpydoc_validate.Validator._load_obj(name)
    errors = {}
    for method in _own_methods(cls):
        found = [code for code, _ in numpydoc_validate.validate(f"{name}.{method}")["errors"]
                 if code in CODES]
        if found:
            errors[method] = found
    assert errors == {}


@pytest.mark.parametrize("name", [name for name, _, _ in PUBLIC])
def test_examples_run(name):
    obj, module_name = next((obj, module) for n, obj, module in PUBLIC if n == name)
    for key in (module_name, name):
        if key in NEEDS:
            pytest.importorskip(NEEDS[key])
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(obj, name, globs={})
    assert tests and tests[0].examples, f"{name} has no examples"
    if inspect.isclass(obj):  # and the methods that have examples of their own
        for method in _own_methods(obj):
            tests += [t for t in finder.find(getattr(obj, method), f"{name}.{method}", globs={})
                      if t.examples]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
        for test in tests:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (above)"
