"""Command line: ``python -m nlstm demo [--output PNG] [--max-iter N]``."""
import sys

USAGE = """usage: python -m nlstm [-h] {demo} ...

nlstm: LSTM networks in Numba kernels, with a scikit-learn estimator API.

commands:
  demo        fit an LSTM classifier on scikit-learn's handwritten digits (read row by
              row), print test metrics beside two baselines, and write a plot
              (python -m nlstm demo --help for its options)

options:
  -h, --help  show this help and exit
"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if not argv or argv[0] != "demo":
        print(USAGE, end="", file=sys.stderr)
        if argv:
            print(f"python -m nlstm: unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    from .demo import main as demo_main
    demo_main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
