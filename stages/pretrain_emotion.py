"""Stage pretrain_emotion (trained by flows/train.py): a model folder, metrics and a loss-curve CSV."""

from stages import main
from stages.train_common import run_stage
from synthtext.ops.config import Params


def stage(params: Params) -> str:
    return run_stage("pretrain_emotion", params)


if __name__ == "__main__":
    main(stage)
