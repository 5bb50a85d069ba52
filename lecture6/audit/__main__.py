import sys

from lecture6.audit import main

sys.exit(main())
