rule sample_trajectories:
    input:
        f"{PACKAGE}/sample_trajectories.py",
        f"{PACKAGE}/samplers.py",
        f"{PACKAGE}/trajectories.py",
        "data/{experiment}/model/weights.safetensors",
    output:
        "data/{experiment}/trajectories.parquet",
    params:
        sde=section("sde"),
        model=section("model"),
        sample=section("sample"),
    log:
        "logs/sample_trajectories/{experiment}.log",
    shell:
        "python -m latent_abstractions.sample_trajectories --experiment {wildcards.experiment}"
