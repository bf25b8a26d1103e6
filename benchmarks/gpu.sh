#!/usr/bin/env bash
# The GPU figures in the README, in one go, on a machine with one CUDA GPU (torch, transformers, tqdm there).
#   benchmarks/gpu.sh DATA TOKENIZER LOGS
# DATA: an aclImdb folder; TOKENIZER: a folder with bert-base-uncased's tokenizer files and a config.json
# (the bundled encoder's folder will do); LOGS: where the logs and JSON figures go. BERT has bert-base sizes
# and random weights (they time the same as the real ones). A dry run elsewhere:
#   DEVICE=cpu SIZES="--train 16 --valid 8 --batch-size 8" IMDB_SIZE=no benchmarks/gpu.sh DATA TOKENIZER LOGS
# SAMPLE=no skips the benchmark on the sample as it is (the full-IMDB-size one still runs).
set -u
data=$1 tok=$2 logs=$3
device=${DEVICE:-cuda} sizes=${SIZES:-"--train 0 --valid 0"}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$logs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__, '| cudnn', torch.backends.cudnn.version(), '| threads', torch.get_num_threads())"
step() { echo "== $1"; shift; local t0=$SECONDS; "$@"; echo "   ($((SECONDS - t0)) s)"; }
step "GRU head, one batch 128 x 512 x 768" python3 benchmarks/bench_gru.py --device "$device" --embedding 768 \
    --length 512 2>&1 | tee "$logs/gru.txt"
[ "${SAMPLE:-yes}" = yes ] && step "IMDB sample" python3 benchmarks/bench_pipeline.py --device "$device" --encoder bert-base --tokenizer "$tok" \
    --data "$data" $sizes --epochs 3 --json "$logs/sample.json" 2>&1 | tee "$logs/sample.txt"
python3 - "$tok" <<'PY'
import shutil, sys
from hw3.sentiment.model import bert_base_random
bert_base_random().save_pretrained("/tmp/bert-base-random")
for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    shutil.copy(f"{sys.argv[1]}/{f}", "/tmp/bert-base-random")
PY
rm -rf /tmp/hw3-gpu-run
step "hw3 train + predict (CLI)" python3 -m hw3 train --encoder /tmp/bert-base-random --data "$data" --epochs 2 \
    --out /tmp/hw3-gpu-run --device "$device" --no-progress 2>&1 | tee "$logs/train.txt"
python3 -m hw3 predict --checkpoint /tmp/hw3-gpu-run "Justice League is terrible. I hated it." "Avengers was great!!" 2>&1 | tee -a "$logs/train.txt"
if [ "${IMDB_SIZE:-yes}" = yes ]; then
    step "full-IMDB size (reviews repeated)" python3 benchmarks/bench_pipeline.py --device "$device" --encoder bert-base \
        --tokenizer "$tok" --data "$data" --imdb-size --epochs 2 --json "$logs/imdb.json" 2>&1 | tee "$logs/imdb.txt"
fi
