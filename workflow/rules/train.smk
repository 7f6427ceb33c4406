rule train_score_model:
    input:
        f"{PACKAGE}/train_score_model.py",
        f"{PACKAGE}/train.py",
        f"{PACKAGE}/resume.py",
        f"{PACKAGE}/distributed.py",
        f"{PACKAGE}/nets/unet.py",
        f"{PACKAGE}/conditioning.py",
        f"{PACKAGE}/sde.py",
        "data/{experiment}/dataset/images.npy",
        "data/{experiment}/dataset/factors.parquet",
    output:
        "data/{experiment}/model/weights.safetensors",
        "data/{experiment}/model/loss.parquet",
        directory("data/{experiment}/model/checkpoints"),
        "data/{experiment}/model/live/metrics.json",
        "data/{experiment}/model/live/plots/metrics/train/loss.tsv",
        "data/{experiment}/model/live/plots/metrics/train/learning_rate.tsv",
    params:
        sde=section("sde"),
        model=section("model"),
        train=section("train"),
    log:
        "logs/train_score_model/{experiment}.log",
    shell:
        "python -m latent_abstractions.train_score_model --experiment {wildcards.experiment}"
