#!/usr/bin/env bash
# bench/multigpu/launch.sh — source me: `launch N CMD...` runs CMD in N processes, one per GPU, with an existing
# launcher: OpenMPI's mpirun when present, else PyTorch's torchrun (--no-python); the NCCL id goes through a fresh
# file. NVLink multicast stays off (NCCL_NVLS_ENABLE=0).
export NCCL_NVLS_ENABLE=0
launch() {
    local n=$1; shift
    export ROPEPP_NCCL_ID_FILE
    ROPEPP_NCCL_ID_FILE=$(mktemp -u /tmp/ropepp_nccl_id.XXXXXX)
    if command -v mpirun > /dev/null; then
        mpirun --allow-run-as-root --oversubscribe -np "$n" -x ROPEPP_NCCL_ID_FILE -x NCCL_NVLS_ENABLE "$@"
    elif command -v torchrun > /dev/null; then
        torchrun --standalone --nproc-per-node "$n" --no-python "$@"
    else
        echo "error: neither mpirun nor torchrun found" >&2; return 1
    fi
}
