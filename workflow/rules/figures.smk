rule figures:
    input:
        f"{PACKAGE}/figures.py",
        f"{PACKAGE}/plotting.py",
        "data/{experiment}/dataset/images.npy",
        "data/{experiment}/dataset/factors.parquet",
        "data/{experiment}/probes.parquet",
        "data/{experiment}/information.parquet",
        "data/{experiment}/trajectories.parquet",
        "data/{experiment}/model/loss.parquet",
    output:
        expand("data/{{experiment}}/figures/{figure}.png", figure=FIGURES),
    params:
        sample=section("sample"),
    log:
        "logs/figures/{experiment}.log",
    shell:
        "python -m latent_abstractions.figures --experiment {wildcards.experiment}"
