"""What the three training stage entry points share: where things are, and the summary line."""


from flows.train import train_stage_flow
from stages import ROOT
from synthtext.ops.config import TRAINING_STAGES, Params


def run_stage(name: str, params: Params) -> str:
    paths = {"clips": "data/processed/clips", "splits": "data/processed/splits",
             "ckpt_dir": f"models/checkpoints/{name}", "metrics": f"metrics/{name}.json",
             "plots": f"metrics/{name}_history.csv", **TRAINING_STAGES[name].folders()}
    summary = train_stage_flow(name, str(ROOT), params.training(name).as_dict(), params.compute.as_dict(), paths)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if isinstance(v, float))
    registered = (f"; registered {summary['registered_model']} v{summary['registered_version']} @candidate"
                  if "registered_version" in summary else "")
    return f"{name}: {shown}; model in {paths['out_dir']}{registered}"
