"""The command line: `fastmlp train | demo | race | bench | compare` (also `python -m fastmlp`)."""

import argparse
import os
import sys
from pathlib import Path

from . import datasets
from .backends import BACKENDS
from .network import INITS
from .bricks import ACTIVATIONS, LOSSES, OUTPUTS, PENALTIES
from .training import SCHEDULES, DivergenceError
from .validation import DTYPES


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastmlp", description="Train the 'One LEGO at a Time' network (NumPy or Numba backend) "
                                    "and reproduce the article's runs.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a network on a dataset and write its results",
                                description="Train a network (any depth, activation, output and loss); writes "
                                            "history.csv, model.npz, and for 2-D classification final.png (and "
                                            "training.gif with --gif) to --out.")
    data = train.add_argument_group("data")
    data.add_argument("--dataset", choices=sorted(datasets.GENERATORS), default="xor")
    data.add_argument("--samples", type=int, default=300, help="points to generate (default 300)")
    data.add_argument("--csv", type=Path, help="train on this CSV instead (header row; numeric features)")
    data.add_argument("--label", default="label", help="the CSV's label column (default 'label')")
    model = train.add_argument_group("model")
    model.add_argument("--hidden", type=hidden_sizes, default=(10,),
                       help="hidden layer widths, comma-separated, e.g. 64,64 (default 10; 0 for none)")
    model.add_argument("--activation", default="sigmoid",
                       help=f"hidden activation, or one per hidden layer comma-separated: {', '.join(sorted(ACTIVATIONS))}")
    model.add_argument("--output", choices=sorted(OUTPUTS), default="sigmoid")
    model.add_argument("--loss", choices=sorted(LOSSES), default="mse")
    model.add_argument("--init", choices=sorted(INITS), default="article")
    model.add_argument("--no-bias", action="store_true", help="the article's bias-free network")
    model.add_argument("--backend", choices=sorted(BACKENDS), default="numba")
    model.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    model.add_argument("--seed", type=int, default=2017)
    fit = train.add_argument_group("training")
    fit.add_argument("--lr", type=float, default=1.0)
    fit.add_argument("--steps", type=int, default=10_000)
    fit.add_argument("--batch-size", type=int, help="default: full batch")
    fit.add_argument("--shuffle", action="store_true", help="new batches each epoch (default: fixed first batch)")
    fit.add_argument("--reg", type=float, default=0.0)
    fit.add_argument("--penalty", choices=sorted(PENALTIES), default="l2")
    fit.add_argument("--schedule", choices=sorted(SCHEDULES), default="constant")
    fit.add_argument("--decay", type=float, default=1e-3, help="the schedule's decay rate")
    fit.add_argument("--clip", type=float, help="clip the gradient's global norm")
    fit.add_argument("--eval-every", type=int, default=100)
    out = train.add_argument_group("output")
    out.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder (default runs/train)")
    out.add_argument("--gif", type=positive_int, metavar="FRAMES", help="also write an animation of this many frames")
    out.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = commands.add_parser("demo", help="the article's runs with both backends (make demo)",
                               description="Reproduce the article's runs, bias-free and with biases, "
                                           "with the numba and numpy backends side by side.")
    demo.add_argument("--out", type=Path, default=Path("runs"))
    demo.add_argument("--steps", type=int, default=300_000, help="steps of each run (numba)")
    demo.add_argument("--compare-steps", type=int, default=20_000,
                      help="steps timed with both backends (default 20,000)")
    demo.add_argument("--frames", type=int, default=40, help="frames of each GIF")
    demo.add_argument("--no-gif", action="store_true")
    demo.add_argument("--no-race", action="store_true", help="skip the race against scikit-learn on digits")

    race = commands.add_parser("race", help="fastmlp's estimators against scikit-learn's on real data",
                               description="Fit fastmlp.MLPClassifier/MLPRegressor and scikit-learn's on "
                                           "the same data and parameters, side by side (needs scikit-learn).")
    race.add_argument("--cases", default="all", help="comma-separated case names of fastmlp.race.CASES")
    race.add_argument("--repeats", type=int, default=3, help="fits of each library per case (median)")
    race.add_argument("--out", type=Path, help="also write the rows to this CSV")

    bench = commands.add_parser(
        "bench", help="benchmark one network on this machine with the benchmark harness",
        description="Time forward, step (plain gradient descent, l2 reg 1e-3) and train_loop (--steps steps on "
                    "a fixed batch) of one network for each backend, with the harness of benchmarks/ (the same "
                    "timing and the same check of every backend against the reference), and this machine's "
                    "matrix-product peak in the same run; prints each backend's ratio to fastmlp and its fraction "
                    "of that peak, and merges the rows into --out (beside it: summary.md, speedup.png). Needs a "
                    "source checkout and the dev extras (pytest-benchmark); the peers need fastmlp[peers].")
    bench.add_argument("--sizes", type=layer_sizes, required=True, help="layer widths, e.g. 784,256,10")
    bench.add_argument("--batch", type=positive_int, default=128, help="rows per batch (default 128)")
    bench.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    bench.add_argument("--output", choices=sorted(OUTPUTS), default="softmax")
    bench.add_argument("--loss", choices=sorted(LOSSES), default="cross_entropy")
    bench.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    bench.add_argument("--backends", default="numba,numpy,minimal,torch,jax,sklearn",
                       help="comma-separated (default: all; the peers that are not installed are skipped)")
    bench.add_argument("--steps", type=positive_int, default=1000, help="steps of each train_loop (default 1,000)")
    bench.add_argument("--out", type=Path, default=Path("runs/bench/benchmarks.csv"),
                       help="the CSV the rows are merged into (default runs/bench/benchmarks.csv)")

    compare = commands.add_parser(
        "compare", help="compare two benchmark runs case by case",
        description="Each case that both runs measured: the two medians, their ratio (> 1: slower in NEW) and "
                    "whether the change is beyond the runs' own spread (the larger interquartile range). A run is "
                    "a run_id, a machine (its main run), a unique prefix of either (looked up in --csv), a CSV "
                    "file (its newest run) or FILE:RUN. Exits with status 1 when --fail-above is given and a "
                    "case is slower beyond its spread by more than that ratio.")
    compare.add_argument("base", help="the run to compare against")
    compare.add_argument("new", help="the run to compare")
    compare.add_argument("--csv", type=Path, default=Path("results/benchmarks.csv"),
                         help="where run ids and machines are looked up (default results/benchmarks.csv)")
    compare.add_argument("--fail-above", type=float, metavar="RATIO",
                         help="exit 1 if a case is slower beyond its spread by more than this ratio, e.g. 1.2")
    compare.add_argument("--all", action="store_true", help="list the unchanged cases too")
    return parser


def layer_sizes(text):
    """'784,256,10' -> (784, 256, 10): at least an input and an output width."""
    sizes = hidden_sizes(text)
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(f"expected at least two comma-separated widths, got {text!r}")
    return sizes


def positive_int(text):
    """A whole number of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_out_folder(out):
    """Refuse, before any training, an --out that is a file or lies under one (the outputs go in it)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; it must be a folder (it will hold history.csv, model.npz, ...)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out} lies under {parent}, which is a file, not a folder")
            break


# fit's divergence remedies, named as this command's flags
REMEDIES = "a smaller --lr, --schedule inverse or exponential, a stronger --reg or --penalty l1, or --clip"


def hidden_sizes(text):
    """'64,64' -> (64, 64); '0' or '' -> () (no hidden layer)."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if sizes == (0,):
        return ()
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden layer widths must be positive, got {text!r}")
    return sizes


def train_command(args):
    from . import plots
    from .files import write_csv
    from .network import MLP

    check_out_folder(args.out)
    if args.csv is not None:
        X, y = datasets.load_csv(args.csv, label=args.label, classes=args.output != "identity")
    else:
        X, y = datasets.GENERATORS[args.dataset](n=args.samples)
    activation = args.activation.split(",") if "," in args.activation else args.activation
    if args.output == "identity":
        n_outputs = 1
    else:
        n_classes = int(y.max()) + 1
        n_outputs = 1 if args.output == "sigmoid" and args.loss == "cross_entropy" else max(n_classes, 2)
    net = MLP((X.shape[1], *args.hidden, n_outputs), bias=not args.no_bias, seed=args.seed,
              backend=args.backend, dtype=args.dtype, activation=activation, output=args.output,
              loss=args.loss, init=args.init)
    history = net.fit(X, y, lr=args.lr, steps=args.steps, batch_size=args.batch_size, shuffle=args.shuffle,
                      reg=args.reg, penalty=args.penalty, schedule=args.schedule, decay=args.decay,
                      clip_norm=args.clip, eval_every=args.eval_every, seed=args.seed,
                      snapshot_every=max(1, args.steps // args.gif) if args.gif else None,
                      progress=not args.quiet)
    write_csv(history.frame, args.out / "history.csv")
    net.save(args.out / "model.npz")
    written = ["history.csv", "model.npz"]
    if X.shape[1] == 2 and args.output != "identity":
        plots.save_png(net, X, y, history, args.out / "final.png")
        written.append("final.png")
        if args.gif:
            plots.save_gif(net, X, y, history, args.out / "training.gif")
            written.append("training.gif")
    last = history.frame.iloc[-1]
    score = "accuracy" if "accuracy" in history.frame else "r2"
    print(f"step {int(last['step'])}: {score} {last[score]:.4f}, loss {last['loss']:.6f}")
    print(f"wrote {', '.join(written)} to {args.out}/")


def race_command(args):
    from . import race
    from .files import write_csv
    cases = race.CASES
    if args.cases != "all":
        known = {case.name: case for case in race.CASES}
        names = [name.strip() for name in args.cases.split(",")]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"--cases: unknown {unknown}; the cases are {sorted(known)}")
        cases = [known[name] for name in names]
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    frame = race.run(cases, repeats=args.repeats)
    if args.out:
        print(f"wrote {write_csv(frame, args.out)}")


def bench_command(args):
    """Run the harness (benchmarks/bench_fastmlp.py, bench_peak.py) on one case in a pytest process, then
    print its run's table."""
    import importlib.util
    import subprocess

    import pandas as pd

    from . import results
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "bench_fastmlp.py").exists():
        raise ValueError(f"fastmlp bench runs the harness in benchmarks/, which this installation ({root}) lacks: "
                         f"run it from a source checkout (pip install -e '.[dev]')")
    if importlib.util.find_spec("pytest_benchmark") is None:
        raise ImportError("fastmlp bench needs pytest-benchmark: pip install -e '.[dev]'")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    case = f"{args.batch}:{','.join(map(str, args.sizes))}:{args.activation}:{args.output}:{args.loss}"
    selection = (f"(test_peak_gemm and {args.dtype}) or ((test_forward or test_step or test_train_loop) "
                 f"and not one_thread and {args.dtype})")
    out = args.out.resolve()
    command = [sys.executable, "-m", "pytest", str(root / "benchmarks" / "bench_fastmlp.py"),
               str(root / "benchmarks" / "bench_peak.py"), "--benchmark-only", "-p", "no:cacheprovider",
               "-k", selection, f"--fastmlp-case={case}", f"--fastmlp-backends={','.join(backends)}",
               f"--fastmlp-steps={args.steps}", f"--fastmlp-results={out}", "-q", "-rN"]
    print("running:", " ".join(command[2:]), flush=True)
    # a run of its own, even when called from a pytest-xdist worker (whose variables pytest-benchmark
    # reads as "benchmarks off")
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_XDIST")}
    status = subprocess.run(command, cwd=root, env=env).returncode
    if status not in (0, 5) or not out.exists():
        raise ValueError(f"the benchmark run failed (pytest exit status {status}); see its output above")
    frame = pd.read_csv(out)
    rows = results.run_rows(frame, results.runs(frame)["run_id"].iloc[0])
    print(f"\n{results.run_heading(rows)}\n{results.bench_table(rows).to_string(index=False)}")
    print(f"\nrows merged into {out}")


def compare_command(args):
    """Print the comparison of two runs; returns 1 where --fail-above finds a slowdown beyond it."""
    from . import results
    base, new = (load_run(which, args.csv) for which in (args.base, args.new))
    table = results.compare(base, new)
    print(f"base: {results.run_heading(base)}\nnew:  {results.run_heading(new)}")
    if base["machine"].iloc[0] != new["machine"].iloc[0]:
        print("two machines: the ratios compare the machines (and whatever else differs), not only the code")
    shown = table if args.all else table[table["change"] != ""]
    if len(shown):
        view = shown.assign(base_ms=shown["median_s_base"] * 1e3, new_ms=shown["median_s_new"] * 1e3)
        print(view[["label", "base_ms", "new_ms", "ratio", "change"]].to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
    counts = table["change"].value_counts()
    print(f"{len(table)} cases in both runs: {counts.get('slower', 0)} slower and {counts.get('faster', 0)} faster "
          f"beyond their spread, {counts.get('', 0)} within it")
    if args.fail_above is not None:
        failing = table[(table["change"] == "slower") & (table["ratio"] > args.fail_above)]
        if len(failing):
            print(f"fastmlp: {len(failing)} cases slower than {args.fail_above:g}x the base beyond their spread",
                  file=sys.stderr)
            return 1
    return 0


def load_run(which, csv):
    """The rows of one run: FILE, FILE:RUN, or RUN looked up in csv (see `fastmlp compare --help`)."""
    import pandas as pd

    from . import results
    path, _, name = which.rpartition(":")
    if not (path and Path(path).is_file()):
        path, name = (which, "") if Path(which).is_file() else (csv, which)
    if not Path(path).is_file():
        raise ValueError(f"no results CSV at {path}")
    frame = results.upgrade(pd.read_csv(path))
    for column in ("median_s", "iqr_s", "n_samples"):
        frame[column] = frame[column].astype(float)
    if not name:
        name = results.runs(frame)["run_id"].iloc[0]
    return results.run_rows(frame, name)


def main(argv=None):
    """Entry point of the `fastmlp` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            train_command(args)
        elif args.command == "race":
            race_command(args)
        elif args.command == "bench":
            bench_command(args)
        elif args.command == "compare":
            return compare_command(args)
        else:
            from . import demo
            demo.run(args.out, steps=args.steps, compare_steps=args.compare_steps, frames=args.frames,
                     gif=not args.no_gif, race=not args.no_race)
    except DivergenceError as exc:
        print(f"fastmlp: error: {exc.what}; nothing was written. Remedies: {REMEDIES}.", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ImportError, MemoryError) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2
    return 0
