"""The noise-conditional classifier: its network, training, prediction, checkpoint and evaluation (the classifier bound).

Layers, from the bottom: core, datasets, diffusion, training, store, sampling, analysis,
classifier, report, pipeline, stages; a layer imports only layers below it (docs/architecture.md)."""
