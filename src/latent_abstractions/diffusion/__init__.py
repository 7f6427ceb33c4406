"""The diffusion model: SDEs, time grids, samplers, conditioning, the score networks and their checkpoints.

Layers, from the bottom: core, datasets, diffusion, training, store, sampling, analysis,
classifier, report, pipeline, stages; a layer imports only layers below it (docs/architecture.md)."""
