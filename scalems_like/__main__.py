import sys

from scalems_like.cli.main import main

sys.exit(main())
