import sys

from gem_envs.cli import main

sys.exit(main())
