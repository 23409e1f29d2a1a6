"""python -m tests.benchmarks --quick|--full|--smoke [--only pending,approvals,submissions,burst,subscribers,cross,ml,soak] [--out DIR]"""

import sys

from tests.benchmarks.harness import main

sys.exit(main())
