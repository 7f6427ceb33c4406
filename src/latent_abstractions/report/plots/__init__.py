"""One module per figure group, so that each group's stage carries only its own drawing code."""
