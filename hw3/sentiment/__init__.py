"""Q4: sentiment analysis of movie reviews with a frozen BERT and a bidirectional GRU.

One module per step of the homework: `encoders` (which BERT), `tokenizer` (with `wordpiece`, its fast exact
path), `data` (IMDB and the embedded sample), `batching` (length buckets), `model` (with `padded_gru`, the GRU
over padded batches), `training`, `features` (BERT outputs computed once), `checkpoint`, `predict`, and
`pipeline` (the `hw3 train` job).
"""

from .errors import HW3Error

__all__ = ["HW3Error"]
