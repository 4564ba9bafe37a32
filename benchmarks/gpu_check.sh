#!/usr/bin/env bash
# Every GPU check of convscope in one command, for a session that is lent an NVIDIA GPU
# (the device tool: one 10-minute command, 15 minutes of device time in all).
#
# Here, once per session (copies ../shared's photos and SqueezeNet weights into .gpu/, which
# git ignores, and downloads the TorchCodec wheel for the device's Python 3.12):
#     bash benchmarks/gpu_check.sh prepare
# Then, on the device (run's carry: [".gpu"], timeout_s: 600):
#     bash benchmarks/gpu_check.sh
# Everything printed is also in $OUT/gpu_check.log. Each step has its own time limit, so one
# that hangs leaves time for the others. SMALL=1 runs every step tiny, on the CPU, to try the
# script here.
#
# The steps: the CUDA tests of the decoders (nvJPEG's pass 1 and pass 2 pixels), images/s of
# each decoder and its pixels against Pillow's, pass 1 of ResNet-50 and AlexNet with the Pillow
# and the nvJPEG decoder against a plain decode-and-forward loop (with the projection for
# ImageNet's 1.28M images), and the bfloat16 / channels-last settings' speed and changed hits.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "prepare" ]; then
    set -e
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .gpu/wheels
    cp -r ../shared/data/imagenet-sample .gpu/
    cp ../shared/models/squeezenet1_0-imagenet.pth .gpu/
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 -d .gpu/wheels 'torchcodec>=0.16'
    du -sh .gpu
    exit 0
fi

OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

if [ "${SMALL:-0}" = "1" ]; then
    DEVICE=cpu; PY="${PYTHON:-.venv/bin/python}"; REPEAT=1; IMAGES=64; RUNS=1; WORKERS=0; SETTINGS="float32 float32+channels-last"
else
    DEVICE=cuda; PY=python3; REPEAT=10; IMAGES=1000; RUNS=2; WORKERS=15; SETTINGS="float32 float32+channels-last bfloat16 bfloat16+channels-last float16"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site
    # the benchmarks and tests find ../shared beside the checkout
    mkdir -p ../shared/data ../shared/models
    [ -e ../shared/data/imagenet-sample ] || cp -r .gpu/imagenet-sample ../shared/data/
    [ -e ../shared/models/squeezenet1_0-imagenet.pth ] || cp .gpu/squeezenet1_0-imagenet.pth ../shared/models/
    nvidia-smi -L
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"

step() {  # step SECONDS TITLE COMMAND...: run a step under its own time limit
    local limit=$1 title=$2
    shift 2
    echo; echo "=== $title ($(date +%T))"
    timeout "$limit" "$@" || echo "=== $title: exit status $?"
}

step 120 "decoder tests (the CUDA one runs on a GPU)" "$PY" -m pytest -q -p no:cacheprovider tests/data/test_data_codec.py
step 120 "decoders: images/s and pixels vs Pillow" "$PY" benchmarks/bench_decode.py --images "$IMAGES" --repeat-images 3 --workers "$WORKERS" --repeats 3 --resize 256
for model in resnet50 alexnet; do
    for decoder in pillow nvjpeg; do
        [ "$DEVICE" = cpu ] && [ "$decoder" = nvjpeg ] && continue
        step 150 "pass 1, $model, $decoder decoder" "$PY" benchmarks/bench_distributed.py --device "$DEVICE" --model "$model" --processes 1 \
            --images "$IMAGES" --repeat-images "$REPEAT" --batch-size 128 --workers "$WORKERS" --threads 4 --repeats "$RUNS" --decoder "$decoder"
    done
done
# shellcheck disable=SC2086
step 150 "bfloat16 and channels-last on the real SqueezeNet" "$PY" benchmarks/bench_precision.py --device "$DEVICE" --images "$IMAGES" --batch-size 128 --repeats "$RUNS" --settings $SETTINGS
echo; echo "=== done ($(date +%T))"
