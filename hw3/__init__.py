"""hw3: the helper package of Deep Learning Homework 3.

Modules, in the order of the homework:
- `hw3.rnn`: Q2, the scalar RNN h_t = x_t − h_{t−1}, y_t = σ(1000·h_t), simulated and in closed form;
- `hw3.attention`: Q3, self-attention with q = k = v = x on four orthogonal base vectors of norm β;
- `hw3.sentiment`: Q4, the frozen-BERT + GRU IMDB sentiment classifier (tokenizer, data, batches, model,
  training, prediction, the `hw3 train` pipeline);
- `hw3.grading`: checks for every graded exercise, `hw3 assign` and `hw3 grade`.
"""

__version__ = "0.1.0"
