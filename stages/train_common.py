"""What the three training stage entry points share: where things are, and the summary line."""

from stages import ROOT

PATHS = {
    "pretrain_emotion": {"out_dir": "models/emotion"},
    "pretrain_generator": {"out_dir": "models/generator_pre", "emotion_dir": "models/emotion"},
    "train_gan": {"out_dir": "models/generator", "emotion_dir": "models/emotion",
                  "generator_dir": "models/generator_pre"},
}


def run_stage(name: str, params: dict) -> str:
    from flows.train import train_stage_flow
    from synthtext.params import section

    paths = {"clips": "data/processed/clips", "splits": "data/processed/splits",
             "ckpt_dir": f"models/checkpoints/{name}", "metrics": f"metrics/{name}.json",
             "plots": f"metrics/{name}_history.csv", **PATHS[name]}
    summary = train_stage_flow(name, str(ROOT), section(params, name), params.get("compute", {}), paths)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if isinstance(v, float))
    registered = (f"; registered {summary['registered_model']} v{summary['registered_version']} @candidate"
                  if "registered_version" in summary else "")
    return f"{name}: {shown}; model in {paths['out_dir']}{registered}"
