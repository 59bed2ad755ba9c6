"""The article's runs, reproduced with both backends and told as a short story (`make demo`)."""

import time
from pathlib import Path

import numpy as np

from . import datasets, plots
from .files import write_csv
from .network import MLP

# The article's code sums its data gradient over the batch of 50 instead of averaging it, so its
# lr 0.003 is lr 0.15 against fastmlp's mean loss (README: "How fastmlp differs from the article").
ARTICLE_BATCH = 50
ARTICLE_LR = 0.003 * ARTICLE_BATCH
RUNS = [
    # (name, hidden, bias, fit options)
    ("article-3-hidden", 3, False, dict(reg=0.0)),
    ("article-50-hidden-reg1e-6", 50, False, dict(reg=1e-6)),
    ("article-50-hidden-reg1e-4", 50, False, dict(reg=1e-4)),
    ("bias-3-hidden", 3, True, dict(reg=0.0)),
    ("bias-50-hidden-reg1e-6", 50, True, dict(reg=1e-6)),
    ("bias-50-hidden-reg1e-4", 50, True, dict(reg=1e-4)),
    ("bias-50-hidden-remedy", 50, True, dict(reg=1e-4, schedule="inverse", decay=1e-4, clip_norm=1.0)),
]


def fit_article_run(backend, hidden, bias, X, y, steps, frames, options):
    """One of RUNS with one backend: (net, history, seconds)."""
    net = MLP((2, hidden, 2), bias=bias, seed=2017, backend=backend)
    start = time.perf_counter()
    history = net.fit(X, y, lr=ARTICLE_LR, steps=steps, batch_size=ARTICLE_BATCH,
                      eval_every=max(1, steps // 500), snapshot_every=max(1, steps // frames),
                      progress=False, on_divergence="stop", **options)
    return net, history, time.perf_counter() - start


def run(out_dir="runs", steps=300_000, compare_steps=20_000, frames=40, gif=True, race=True, echo=print):
    """Train every run of RUNS with numba for `steps` (pictures, history) and with both backends for
    the first `compare_steps` (wall time, largest parameter difference), then (race) race scikit-learn
    on its digits; returns a summary."""
    out_dir = Path(out_dir)
    compare_steps = min(compare_steps, steps)
    X, y = datasets.xor()
    from . import warmup
    echo("fastmlp demo: the network of 'One LEGO at a Time' learning XOR: 300 points, trained on the")
    echo("first 50 as the article's code does. Its code sums the gradient over that batch, so its lr 0.003")
    echo(f"is lr {ARTICLE_LR:g} against the mean loss used here. Numba kernels ready in "
         f"{sum(warmup(('float64',), sparse=False).values()):.1f} s (compiled or loaded from the cache).\n")
    echo(f"{'':28s} {f'after {steps:,} steps (numba)':>27s}   {f'first {compare_steps:,} steps, both backends':>42s}")
    echo(f"{'run':28s} {'accuracy':>8s} {'best':>6s} {'loss':>9s}   {'numba s':>8s} {'numpy s':>8s} "
         f"{'speedup':>8s} {'max |diff|':>11s}")
    summary = []
    for name, hidden, bias, options in RUNS:
        net, history, t_full = fit_article_run("numba", hidden, bias, X, y, steps, frames, options)
        fast, _, t_numba = fit_article_run("numba", hidden, bias, X, y, compare_steps, 1, options)
        slow, _, t_numpy = fit_article_run("numpy", hidden, bias, X, y, compare_steps, 1, options)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(fast.parameters, slow.parameters))
        frame = history.frame
        write_csv(frame, out_dir / f"{name}.csv")
        title = f"{name}: {hidden} hidden, {'with' if bias else 'no'} biases, lr {ARTICLE_LR:g}, {options}"
        plots.save_png(net, X, y, history, out_dir / f"{name}.png", title=title)
        if gif:
            plots.save_gif(net, X, y, history, out_dir / f"{name}.gif", title=title)
        last = frame.iloc[-1]
        row = dict(run=name, accuracy=last["accuracy"], best_accuracy=frame["accuracy"].max(),
                   loss=last["loss"], full_run_s=t_full, numba_s=t_numba, numpy_s=t_numpy,
                   max_abs_diff=diff, diverged_at=history.diverged_at)
        summary.append(row)
        echo(f"{name:28s} {row['accuracy']:8.3f} {row['best_accuracy']:6.3f} {row['loss']:9.5f}   "
             f"{t_numba:8.2f} {t_numpy:8.2f} {t_numpy / t_numba:7.1f}x {diff:11.1e}"
             + (f"  diverged at step {history.diverged_at}" if history.diverged_at else ""))
    _tell_the_story(summary, steps, compare_steps, out_dir, echo)
    if race:
        _race_on_digits(echo)
    return summary


def _race_on_digits(echo):
    """The bricks at work on real data: fastmlp.MLPClassifier against scikit-learn's on its digits."""
    from . import race
    try:
        import sklearn  # noqa: F401
    except ImportError:
        echo("\nThe race against scikit-learn needs it: pip install 'fastmlp[sklearn]'.")
        return
    echo("\nThe same bricks on real data: scikit-learn's digits (8x8 images, 10 classes), its MLPClassifier "
         "against\nfastmlp.MLPClassifier with the same parameters and random_state (the same path, so the "
         "same scores):")
    race.run([case for case in race.CASES if case.dataset == "digits"], repeats=1, echo=echo)


def _tell_the_story(summary, steps, compare_steps, out_dir, echo):
    by_name = {row["run"]: row for row in summary}
    article = [row for row in summary if row["run"].startswith("article")]
    biased = [row for row in summary if row["run"].startswith("bias")]
    speedups = [row["numpy_s"] / row["numba_s"] for row in summary]
    plain, remedy = by_name["bias-50-hidden-reg1e-4"], by_name["bias-50-hidden-remedy"]
    if plain["diverged_at"] and not remedy["diverged_at"]:
        verdict = f"without them it diverged at step {plain['diverged_at']:,}; with them it did not"
    else:
        verdict = (f"with the true gradient of its loss this network did not explode in {steps:,} steps, "
                   "so here they only slow it")
    echo(f"""
What the article showed: its bias-free network learning XOR. Here, after {steps:,} steps, it reaches
at best {max(r['best_accuracy'] for r in article):.2f} accuracy on all 300 points, and it cannot do much better: without biases,
sigmoid(z) + sigmoid(-z) = 1 makes its decision function antisymmetric about the origin, while
XOR's label is the same at x and -x (README: "Why the article's network cannot learn its own XOR data").
What fixes it: biases, zero at the start so that the article's initial weights are unchanged. The
same runs then reach {min(r['best_accuracy'] for r in biased):.2f} to {max(r['best_accuracy'] for r in biased):.2f} (3 hidden units are too few; the rest are among the
250 points never trained on).
The article's remedies against exploding gradients (here an inverse lr decay and gradient clipping)
end the 50-unit, reg 1e-4 run at loss {remedy['loss']:.5f} against {plain['loss']:.5f} without them:
{verdict}.
Speed: over the first {compare_steps:,} steps numba ran {min(speedups):.0f}x to {max(speedups):.0f}x faster than the NumPy reference,
evaluations included; the two backends' parameters then differ by at most {max(r['max_abs_diff'] for r in summary):.1e}.
Pictures (PNG, GIF) and histories (CSV) are in {out_dir}/.""")
