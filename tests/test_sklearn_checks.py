"""scikit-learn's own estimator checks; one expected to fail in float32, and
passing in float64 (below)."""
import pytest
from sklearn.utils.estimator_checks import (check_sample_weight_equivalence_on_dense_data,
                                            parametrize_with_checks)

from nlstm import LSTMClassifier, LSTMRegressor

# Small but default-shaped models keep the ~50 checks per estimator quick.
ESTIMATORS = [
    LSTMRegressor(hidden_size=16),
    LSTMClassifier(hidden_size=16),
]


def expected_failures(estimator):
    # Weights of 0..4 against repeated samples: the same loss and gradients
    # mathematically, rounded differently. After 200 epochs in float32 the
    # classifier's probabilities agree to 2e-7 relative (measured), above the
    # check's 1e-7; in float64 both estimators pass (next test).
    if isinstance(estimator, LSTMClassifier) and estimator.dtype == "float32":
        return {"check_sample_weight_equivalence_on_dense_data":
                "float32 rounding: agrees to 2e-7 relative, the check asks 1e-7"}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", [LSTMRegressor(hidden_size=16, dtype="float64"),
                                       LSTMClassifier(hidden_size=16, dtype="float64")],
                         ids=["regressor", "classifier"])
def test_sample_weight_equals_repeating_samples_in_float64(estimator):
    check_sample_weight_equivalence_on_dense_data(type(estimator).__name__, estimator)
