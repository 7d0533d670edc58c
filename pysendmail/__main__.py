import sys

from pysendmail.cli.main import main

sys.exit(main())
