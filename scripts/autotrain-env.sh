#!/usr/bin/env bash
# Build the lean AutoTrain environment that tunebridge's autotrain backend launches.
#
#   scripts/autotrain-env.sh [VENV_DIR]      (default: .build/autotrain-venv, git-ignored)
#
# autotrain-advanced 0.8.36 pins transformers 4.48 / trl 0.13, so it cannot share tunebridge's main
# environment (transformers 5). Installing it with its dependencies pulls ~3 GB (xgboost, timm,
# torchvision, CUDA wheels), so it goes in with --no-deps plus only what its LLM trainers import.
# torch stays pinned to 2.13.0 in every pip call. A finished environment is reused (marker file).
# Then: export TUNEBRIDGE_AUTOTRAIN_PYTHON=<VENV_DIR>/bin/python
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/.build/autotrain-venv}"
PYTHON="${PYTHON:-python3}"
TORCH="torch==2.13.0"
MARKER="$VENV/.tunebridge-autotrain-0.8.36"

if [ -f "$MARKER" ] && "$VENV/bin/python" -c "import autotrain" 2>/dev/null; then
    echo "AutoTrain environment ready: $VENV/bin/python"
    exit 0
fi
start=$(date +%s)
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --no-warn-conflicts)
"${PIP[@]}" "$TORCH"                                    # first, so pip never picks a CUDA build
"${PIP[@]}" --no-deps autotrain-advanced==0.8.36
"${PIP[@]}" "$TORCH" transformers==4.48.0 trl==0.13.0 peft==0.14.0 accelerate==1.2.1 "datasets~=3.2.0" \
    huggingface-hub==0.27.0 pydantic==2.10.4 loguru==0.7.3 pyyaml==6.0.2 pandas==2.2.3 scikit-learn==1.6.0 \
    tensorboard==2.18.0 requests==2.32.3 packaging==24.2 tqdm==4.67.1 sentencepiece==0.2.0 tiktoken==0.8.0 \
    einops==0.8.0
"$VENV/bin/python" -c "import torch, autotrain.parser, autotrain.trainers.clm.params; assert torch.__version__.startswith('2.13.0'), torch.__version__"
touch "$MARKER"
echo "AutoTrain environment built in $(( $(date +%s) - start )) s: $VENV/bin/python"
