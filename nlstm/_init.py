"""Parameter initialisation: PyTorch's default plus forget-gate bias options."""
import numpy as np


def uniform_init(params, hidden_size, rng):
    """PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / np.sqrt(hidden_size)
    for p in params.values():
        p[...] = rng.uniform(-bound, bound, size=p.shape)


def apply_forget_bias(params, hidden_size, forget_bias, chrono_max, rng, cell="lstm"):
    """Set the biases of the gate that keeps the state, in every layer and direction:
    the LSTM's forget gate f, the GRU's update gate z (``h' = z * h + (1 - z) * n``),
    both the second block of H rows.

    A number is added to that gate's part of ``bias_ih``. ``"chrono"`` (Tallec &
    Ollivier 2018) sets it to ``log(u)``, ``u ~ U(1, chrono_max - 1)``, with its
    ``bias_hh`` part zero, so the initial memory spans the time scales of the
    data; an LSTM's input gate gets the negative (the GRU's candidate is
    weighted by ``1 - z`` already). Only the starting point changes, never the math.
    """
    H = hidden_size
    for name, p in params.items():
        if forget_bias == "chrono":
            if name.startswith("bias_ih"):
                u = rng.uniform(1.0, max(chrono_max - 1.0, 1.0), size=H)
                p[H:2 * H] = np.log(u)
                if cell == "lstm":
                    p[0:H] = -np.log(u)
            elif name.startswith("bias_hh"):
                p[H:2 * H] = 0.0
                if cell == "lstm":
                    p[0:H] = 0.0
        elif name.startswith("bias_ih"):
            p[H:2 * H] += forget_bias
