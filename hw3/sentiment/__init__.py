"""Q4: sentiment analysis of movie reviews with a frozen BERT and a bidirectional GRU.

One module per step of the homework: `encoders` (which BERT), `tokenizer` (with `wordpiece`, its fast exact
path), `data` (IMDB and the embedded sample), `batching` (length buckets), `model` (with `padded_gru`, the GRU
over padded batches, and `ModelConfig`), `training`, `features` (BERT outputs computed once), `checkpoint`
(model.pt), `predict`, and `pipeline` (the `hw3 train` job). Around them, one module per concept:
`precision` (which dtype BERT and the GRU compute in), `memory` (where cached features go), `feature_cache`
(features kept on disk across runs), `config` (`TrainConfig`, the CLI's options), `run_state` (last.pt) and
`progress` (bars and ETA lines). Errors are `hw3.errors.HW3Error`.
"""

from ..errors import HW3Error

__all__ = ["HW3Error"]
