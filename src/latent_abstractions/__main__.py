"""`python -m latent_abstractions` is the `latent-abstractions` command."""

import sys

from .entry_point import main

sys.exit(main())
