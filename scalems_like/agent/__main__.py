import sys

from scalems_like.agent.main import main

sys.exit(main())
