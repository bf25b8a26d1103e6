"""Print the memory plan (where the train and validation features go) for the machines students use.

Simulated free memory, no GPU needed: `python benchmarks/memory_plan.py`. The figures are the free memory
a run sees when it plans (after the CUDA context, BERT's weights and the tokenized data are in place).
Feature sizes are float16 [tokens, width] for full IMDB's 17,500 / 7,500 train / validation reviews
(about 290 tokens each after cutting to 512) and for the embedded sample's 196 / 84.
"""

from __future__ import annotations

from hw3.sentiment.memory import Resources, StepShape, plan

GB = 10**9
BERT_BASE = StepShape(128, 512, 768, 3072, 12, 256, 2, 2, bert_element_bytes=2)
BUNDLED = StepShape(128, 512, 384, 1536, 12, 256, 2, 2, bert_element_bytes=2)
# (machine, device, GPU free, RAM available)
MACHINES = [
    ("free Colab, T4 16 GB, 12.7 GB RAM", "cuda", 15.2 * GB, 10.5 * GB),
    ("Colab Pro, A100 40 GB, 83 GB RAM", "cuda", 41.5 * GB, 78.0 * GB),
    ("Colab Pro, L4 24 GB, 53 GB RAM", "cuda", 22.0 * GB, 48.0 * GB),
    ("free Colab, CPU only, 12.7 GB RAM", "cpu", 0, 10.5 * GB),
    ("2-core laptop, 8 GB RAM", "cpu", 0, 5.5 * GB),
]
# (data, width, train tokens, validation tokens)
DATA = {"full IMDB": (17_500 * 290, 7_500 * 290), "sample": (196 * 270, 84 * 270)}


def sizes(width: int, data: str) -> dict[str, int]:
    """Bytes of the float16 train and validation features of `data` at this BERT width."""
    train, valid = DATA[data]
    return {"train": train * width * 2, "valid": valid * width * 2}


def main() -> None:
    print("| machine | encoder, data | train features | validation features | kept free for the step |")
    print("|---|---|---|---|---|")
    for machine, device, gpu, ram in MACHINES:
        for encoder, shape in (("bert-base", BERT_BASE), ("bundled", BUNDLED)):
            for data in DATA:
                p = plan(sizes(shape.bert_width, data), Resources(int(gpu), int(ram)), shape, device)
                where = {k: f"{p.places[k]} ({p.sizes[k] / GB:.2f} GB)" for k in p.places}
                print(f"| {machine} | {encoder}, {data} | {where['train']} | {where['valid']} | {p.reserve / GB:.1f} GB |")


if __name__ == "__main__":
    main()
