"""`python -m tmuxtrain.cli`: the same as the `tmuxtrain` command."""

import sys

from tmuxtrain.cli import main

sys.exit(main())
