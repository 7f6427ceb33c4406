"""Training the score network: the trainer, its graphed step, resume, distributed runs, the snapshot schedule.

Layers, from the bottom: core, datasets, diffusion, training, store, sampling, analysis,
classifier, report, pipeline, stages; a layer imports only layers below it (docs/architecture.md)."""
