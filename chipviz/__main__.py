"""`python -m chipviz ...`: the same command line as the `chipviz` script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
