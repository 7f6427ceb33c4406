"""The pipeline around the library: params and schema checks, the stage table, paths, proxies, the command line, dvc.yaml, verification.

Layers, from the bottom: core, datasets, diffusion, training, store, sampling, analysis,
classifier, report, pipeline, stages; a layer imports only layers below it (docs/architecture.md)."""
