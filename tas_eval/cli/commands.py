"""The handlers of the `tas-eval` sub-commands: each reads its arguments, calls the library and prints."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tas_eval.cli.tables import describe_backbones, summary_table, table
from tas_eval.errors import UserError

log = logging.getLogger("tas_eval.cli")


# ----------------------------------------------------------------------------------------- shared


def open_data(args, build_if_missing: bool = False):
    """The dataset the data options of a command name (tas_eval.data.registry)."""
    from tas_eval.data.protocol import DataOptions
    from tas_eval.data.registry import open_dataset

    options = DataOptions(root=args.data_root, annotations=args.annotations, prompts=args.prompts,
                          profile=args.profile, seed=args.data_seed)
    return open_dataset(args.dataset, options, build_if_missing=build_if_missing)


def open_builtin(args, build_if_missing: bool = False):
    """The built-in benchmark of the data options; a UserError for another dataset."""
    from tas_eval.data.builtin.benchmark import Benchmark

    dataset = open_data(args, build_if_missing)
    if not isinstance(dataset, Benchmark):
        raise UserError(f"This command reads the built-in benchmark's scenes; --dataset {args.dataset} has none.")
    return dataset


def generative_options(args):
    """The set-level metrics' options of a run or evaluate command line."""
    from tas_eval.metrics.generative import GenerativeOptions

    return GenerativeOptions(backbone=args.backbone or "tas_cnn", checkpoint=args.backbone_checkpoint,
                             use_cache=not args.no_cache, channel_mode=args.generative_channels or "lr")


def assessor_options(args):
    """The question-answering metrics' options of a run or evaluate command line."""
    from tas_eval.metrics.question_answering import AssessorOptions

    return AssessorOptions(checkpoint=args.assessor_checkpoint, llm=args.assessor_llm,
                           localizer=args.localizer_checkpoint)


def _print_results(all_results: list[dict], folders: list[Path], heading: str) -> None:
    print(heading)
    print(summary_table(all_results))
    for line in describe_backbones(all_results[0]):
        print(line)
    notes = all_results[0]["extra"].get("model_notes")
    if notes:
        print("model notes (summed over the test items): " + ", ".join(f"{k}={v:g}" for k, v in sorted(notes.items())))
    for r in all_results:
        extra = r["extra"]
        if extra.get("question_answering_not_computed"):
            print(f"split {r['split']}: question answering not computed: {extra['question_answering_not_computed']}")
        for mid, w in sorted(extra.get("question_answering_withheld", {}).items()):
            print(f"split {r['split']}: {mid} withheld: {w['why']} ({w['accuracy_ground_truth']:.1f} % right on the "
                  f"references, chance {w['chance']:.1f} %, {w['questions']} questions)")
    for folder in folders:
        print(f"results: {folder}")


# ----------------------------------------------------------------------------------------- run, evaluate, validate


def run(args) -> int:
    """`tas-eval run --model M --split N`: train (or reuse), predict, evaluate and record."""
    from tas_eval.results import results_dir
    from tas_eval.runner import parse_splits, run_model

    from tas_eval.models import get_model_class

    splits = parse_splits(args.split, args.splits)
    get_model_class(args.model)  # a wrong name fails before any data is built
    dataset = open_data(args, build_if_missing=True)
    all_results = run_model(args.model, splits, dataset, device=args.device, seed=args.seed,
                            train_profile=args.train_profile, results_root=args.results,
                            generative=generative_options(args), localizer=args.localizer_checkpoint,
                            assessor=assessor_options(args), precision=args.precision)
    first = all_results[0]
    folders = [results_dir(args.results, r["dataset"]["id"], r["split"], r["model"]) for r in all_results]
    _print_results(all_results, folders, f"{first['model']} on {first['dataset']['id']} (device {first['device']}, "
                                         f"precision {first['extra']['precision']})")
    return 0


def evaluate(args) -> int:
    """`tas-eval evaluate --predictions DIR --split N` (or --ground-truth)."""
    from tas_eval.device import resolve_device
    from tas_eval.evaluation import evaluate_ground_truth, evaluate_predictions

    dataset = open_data(args)
    device = resolve_device(args.device)
    if args.ground_truth:
        if args.predictions or args.name:
            raise UserError("--ground-truth scores the dataset's own references: give it without --predictions and --name.")
        results, folder = evaluate_ground_truth(dataset, args.split, results_root=args.results, device=device,
                                                generative=generative_options(args),
                                                localizer=args.localizer_checkpoint, assessor=assessor_options(args))
    else:
        if not args.predictions:
            raise UserError("tas-eval evaluate needs --predictions DIR (or --ground-truth).")
        results, folder = evaluate_predictions(args.predictions, dataset, args.split, name=args.name,
                                               results_root=args.results, device=device,
                                               generative=generative_options(args), overwrite=args.overwrite,
                                               localizer=args.localizer_checkpoint, assessor=assessor_options(args))
    _print_results([results], [folder], f"{results['model']} on {results['dataset']['id']} split {args.split}")
    return 0


def validate(args) -> int:
    """`tas-eval validate DIR --split N`: print every problem; exit 1 if there is any."""
    from tas_eval.validate import validate_predictions

    dataset = open_data(args)
    problems = validate_predictions(args.predictions, dataset, args.split)
    if problems:
        for p in problems:
            print(p)
        print(f"{args.predictions}: INVALID ({len(problems)} problem{'s' if len(problems) != 1 else ''}) for split "
              f"{args.split} of {dataset.id}")
        return 1
    print(f"{args.predictions}: valid ({len(dataset.split_ids(args.split, 'test'))} items) for split {args.split} "
          f"of {dataset.id}")
    return 0


# ----------------------------------------------------------------------------------------- listings


def ls(args) -> int:
    """`tas-eval ls datasets|models|metrics`; `ls datasets` with data options describes that dataset."""
    from tas_eval import listing

    if args.what == "models":
        print(table([["name", "guidance", "trains", "paper"]] + listing.model_rows()))
    elif args.what == "metrics":
        print(table([["metric", "direction", "unit", "version", "definition"]]
                    + [r[:4] + r[5:] for r in listing.metric_rows()]))
    elif args.data_root or args.dataset != "builtin":
        print(table([["dataset", args.dataset]] + listing.dataset_summary(open_data(args))))
    else:
        print(table([["dataset", "kind", "description"]] + listing.dataset_rows()))
    return 0


def metrics_list(args) -> int:
    """`tas-eval metrics list`: id, direction, unit, version, provenance and definition of every metric."""
    from tas_eval.listing import metric_rows

    rows = [["id", "direction", "unit", "version", "provenance", "definition"]] + metric_rows()
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join([cell.ljust(w) for cell, w in zip(r[:-1], widths)] + [r[-1]]).rstrip())
    return 0


# ----------------------------------------------------------------------------------------- the built-in benchmark


def data_build(args) -> int:
    """`tas-eval data build`."""
    from tas_eval.data.builtin.benchmark import Benchmark
    from tas_eval.data.builtin.build import build_benchmark

    bench = Benchmark(build_benchmark(args.profile, args.seed, args.out, args.workers))
    print(f"{bench.root}  {bench.id}  manifest {bench.content_hash}")
    return 0


def data_show(args) -> int:
    """`tas-eval data show ITEM [--out DIR]`."""
    from tas_eval.audio import mono_from_binaural, write_wav
    from tas_eval.data.builtin.show import describe, write_figure

    bench = open_builtin(args)
    if args.item not in bench.all_ids():
        raise UserError(f"{bench.root}: has no item '{args.item}' (items look like {bench.all_ids()[0]}).")
    print(describe(bench, args.item))
    if args.out:
        out = Path(args.out)
        audio = bench.binaural(args.item)
        write_wav(out / f"{args.item}_binaural.wav", audio, bench.sample_rate)
        write_wav(out / f"{args.item}_mono.wav", mono_from_binaural(audio), bench.sample_rate)
        write_figure(bench, args.item, out / f"{args.item}.png")
        print(f"wrote {out / (args.item + '_binaural.wav')}, {args.item}_mono.wav and {args.item}.png")
    return 0


def backbone_train(args) -> int:
    """`tas-eval backbone train`: train tas_cnn and write its checkpoint (default: the packaged weights file)."""
    from tas_eval.device import resolve_device
    from tas_eval.metrics.backbones.tas_cnn import WEIGHTS, train

    device = resolve_device(args.device)
    benchmark = open_builtin(args, build_if_missing=True)
    out = Path(args.out) if args.out else WEIGHTS
    record = train(benchmark, out, device=device, seed=args.seed)
    print(json.dumps(record, indent=1))
    print(f"tas_cnn: held-out accuracy {record['held_out_accuracy']:.3f} on {record['test_sources']} sources "
          f"of the test items of split {record['split']} ({record['held_out_frame_accuracy']:.3f} on "
          f"{record['held_out_frames']} 0.96 s frames); wrote {out} ({record['bytes'] / 1e6:.2f} MB, "
          f"sha256 {record['sha256']})")
    return 0


def localizer_train(args) -> int:
    """`tas-eval localizer train`: train the localizer and write its checkpoint (default: the packaged weights file)."""
    from tas_eval.device import resolve_device
    from tas_eval.metrics.localizer import WEIGHTS
    from tas_eval.metrics.localizer.training import train
    from tas_eval.parallel import worker_count

    device = resolve_device(args.device)
    benchmark = open_builtin(args, build_if_missing=True)
    out = Path(args.out) if args.out else WEIGHTS
    record = train(benchmark, out, profile=args.train_profile, device=device, seed=args.seed,
                   workers=worker_count(args.workers))
    print(json.dumps(record, indent=1))
    for head, m in record["held_out"].items():
        where = {"level_only": "windows kept to level differences", "time_only": "windows kept to time differences"}.get(
            head, f"the {head} head")
        print(f"tas_loc on {where}, {m['frames']} held-out frames with one dominant source: azimuth error "
              f"{m['azimuth_error_deg']:.1f} deg, side {m['side_accuracy']:.3f}, distance within 0.5 m "
              f"{m['distance_within_0.5m']:.3f}, category {m['category_accuracy']:.3f}")
    print(f"wrote {out} ({record['bytes'] / 1e6:.2f} MB, sha256 {record['sha256']}) in {record['seconds']:.0f} s")
    return 0


def assessor_train(args) -> int:
    """`tas-eval assessor train`: train the assessor and write its checkpoint (default: the packaged weights file)."""
    from tas_eval.device import resolve_device
    from tas_eval.metrics.assessor import WEIGHTS
    from tas_eval.metrics.assessor.training import train
    from tas_eval.parallel import worker_count

    device = resolve_device(args.device)
    benchmark = open_builtin(args, build_if_missing=True)
    out = Path(args.out) if args.out else WEIGHTS
    out.parent.mkdir(parents=True, exist_ok=True)
    record = train(benchmark, out, profile=args.train_profile, llm=args.llm, localizer=args.localizer_checkpoint,
                   device=device, seed=args.seed, split=args.split, workers=worker_count(args.workers))
    print(json.dumps(record, indent=1))
    val = record["val"]
    for t, acc in val["accuracy"].items():
        print(f"tas_qa on the val part of split {record['split']}, {t}: {acc['accuracy']:.1f} % of {acc['n']} questions "
              f"(chance {val['chance'][t]:.1f} %)")
    print(f"wrote {out} ({record['bytes'] / 1e6:.2f} MB, sha256 {record['sha256']}) in {record['seconds']:.0f} s "
          f"({record['seconds_training']:.0f} s training, {record['torch_threads']} torch thread(s))")
    return 0


# ----------------------------------------------------------------------------------------- the leaderboard


def leaderboard(args) -> int:
    """`tas-eval leaderboard --results DIR --out DIR` (or --sync-display-schema [--check])."""
    from leaderboard import build as board

    if args.sync_display_schema:
        from tas_eval.io import write_bytes_atomic
        from tas_eval.metrics import list_metrics

        new, changes = board.sync_display_schema(board.load_display_schema(), list_metrics())
        for line in changes:
            print(line)
        if args.check:
            return 1 if changes else 0
        if changes:
            write_bytes_atomic(board.DISPLAY_SCHEMA_PATH, (json.dumps(new, indent=2, ensure_ascii=False) + "\n").encode())
        return 0
    paths = board.build_site(args.results, args.out)
    data = json.loads(paths[1].read_text(encoding="utf-8"))
    rows = sum(len(t["rows"]) for t in data["tables"])
    print(f"leaderboard: {rows} results in {len(data['tables'])} tables, {len(data['warnings'])} warnings -> {paths[0]}")
    return 0
