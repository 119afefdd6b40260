import sys

from yaml2torch.cli import main

sys.exit(main())
