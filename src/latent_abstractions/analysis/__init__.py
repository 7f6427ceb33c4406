"""What the studies compute from trajectories and data: probes, information, ground truth, decision order, representation, forks.

Layers, from the bottom: core, datasets, diffusion, training, store, sampling, analysis,
classifier, report, pipeline, stages; a layer imports only layers below it (docs/architecture.md)."""
