rule fit_probes:
    input:
        f"{PACKAGE}/fit_probes.py",
        f"{PACKAGE}/probes.py",
        "data/{experiment}/trajectories.parquet",
    output:
        "data/{experiment}/probes.parquet",
    params:
        probes=section("probes"),
    log:
        "logs/fit_probes/{experiment}.log",
    shell:
        "python -m latent_abstractions.fit_probes --experiment {wildcards.experiment}"


rule estimate_information:
    input:
        f"{PACKAGE}/estimate_information.py",
        f"{PACKAGE}/information.py",
        "data/{experiment}/dataset/images.npy",
        "data/{experiment}/dataset/factors.parquet",
        "data/{experiment}/model/weights.safetensors",
    output:
        "data/{experiment}/information.parquet",
    params:
        sde=section("sde"),
        information=section("information"),
    log:
        "logs/estimate_information/{experiment}.log",
    shell:
        "python -m latent_abstractions.estimate_information --experiment {wildcards.experiment}"
