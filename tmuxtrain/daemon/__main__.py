import sys

from tmuxtrain.daemon.main import main

sys.exit(main())
