"""Command line: ``python -m nlstm demo [--output PNG] [--max-iter N]``."""
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "demo":
        print("usage: python -m nlstm demo [--output PNG] [--max-iter N]", file=sys.stderr)
        return 2
    from .demo import main as demo_main
    demo_main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
