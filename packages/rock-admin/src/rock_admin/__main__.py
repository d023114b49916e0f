import sys

from rock_admin.cli import main

sys.exit(main())
