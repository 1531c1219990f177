"""``python -m keras_tinyloc``: see :mod:`keras_tinyloc.cli`."""
import sys

from keras_tinyloc.cli import main

if __name__ == "__main__":
    sys.exit(main())
