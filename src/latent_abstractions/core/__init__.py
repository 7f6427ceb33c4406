"""Foundations every layer may use: errors, factors, provenance and atomic writes, the code closure, progress, pixels, devices, safetensors files, the read audit.

Layers, from the bottom: core, datasets, diffusion, training, store, sampling, analysis,
classifier, report, pipeline, stages; a layer imports only layers below it (docs/architecture.md)."""
