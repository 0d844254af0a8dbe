"""scikit-learn's own estimator checks, none skipped or expected to fail."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from nlstm import LSTMClassifier, LSTMRegressor

# Small but default-shaped models keep the ~50 checks per estimator quick.
ESTIMATORS = [
    LSTMRegressor(hidden_size=16),
    LSTMClassifier(hidden_size=16),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
