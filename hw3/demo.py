"""`hw3 demo`: the Q2 and Q3 results, printed and drawn to PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import attention, rnn
from .sentiment.checkpoint import ensure_writable, save_figure

Q2_EXAMPLE = (3, 5, -2, 4, 7, 1)
Q3_BETA = 10.0


def run(out: str | Path = "runs/demo", log: Callable[[str], None] = print) -> list[Path]:
    """Print the Q2 closed form on an example and the Q3 answers; write q2_rnn.png and q3_attention.png.

    HW3Error (one line) when `out` is a file or cannot be written, checked before anything is computed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    ensure_writable(out)
    h, y = rnn.simulate(Q2_EXAMPLE)
    log(f"Q2: x = {list(Q2_EXAMPLE)} -> h_T = {int(h[-1])} "
        f"(even-position sum {sum(Q2_EXAMPLE[1::2])} - odd-position sum {sum(Q2_EXAMPLE[0::2])}), "
        f"y_T = {float(y[-1]):g} (closed form {rnn.closed_form(Q2_EXAMPLE):g})")
    X = attention.tokens(Q3_BETA)
    W, _ = attention.self_attention(X)
    norms = ", ".join(f"{float(n) / Q3_BETA:.4f}β" for n in attention.token_norms(X))
    log(f"Q3 (β = {Q3_BETA:g}): norms {norms}; y1, y2, y3 ≈ {', '.join(attention.describe_outputs(W))}")
    paths = [out / "q2_rnn.png", out / "q3_attention.png"]
    for fig, path in ((rnn.plot_sequence(Q2_EXAMPLE), paths[0]), (attention.plot_weights(), paths[1])):
        try:
            save_figure(fig, path)
        finally:
            plt.close(fig)
    log(f"wrote {paths[0]} and {paths[1]}")
    return paths
