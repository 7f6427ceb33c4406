"""`python -m latent_abstractions` is the `latent-abstractions` command."""

import sys

from .pipeline.entry_point import main

sys.exit(main())
