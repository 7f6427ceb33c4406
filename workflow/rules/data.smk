rule prepare_data:
    input:
        f"{PACKAGE}/prepare_data.py",
        f"{PACKAGE}/datasets/base.py",
        f"{PACKAGE}/datasets/bumps.py",
    output:
        "data/{experiment}/dataset/images.npy",
        "data/{experiment}/dataset/factors.parquet",
    params:
        dataset=section("dataset"),
    log:
        "logs/prepare_data/{experiment}.log",
    shell:
        "python -m latent_abstractions.prepare_data --experiment {wildcards.experiment}"
