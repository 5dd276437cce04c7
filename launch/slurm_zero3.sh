#!/bin/bash
# rlsp train on several machines under SLURM with DeepSpeed ZeRO-3: one task per machine, each
# starting `accelerate launch` for its 8 GPUs. Submit from the repository root:
#   sbatch --nodes 2 launch/slurm_zero3.sh recipes/rl_qwen2.5-32b_length_judge.yaml
#   CONFIG=launch/zero3_offload_optimizer.yaml sbatch --nodes 2 launch/slurm_zero3.sh RECIPE [overrides]
# Check the memory plan first: rlsp plan RECIPE --gpus $((NODES * 8)).
#SBATCH --job-name=rlsp-train
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

CONFIG=${CONFIG:-launch/zero3.yaml}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MAIN_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
NUM_PROCESSES=$((SLURM_NNODES * GPUS_PER_NODE))
mkdir -p logs

# Single quotes: $SLURM_NODEID is expanded on each machine, not here.
srun bash -c 'accelerate launch --config_file "$0" \
    --num_machines "$SLURM_NNODES" --num_processes "$1" --machine_rank "$SLURM_NODEID" \
    --main_process_ip "$2" --main_process_port 29500 \
    -m rlsp train "${@:3}"' "$CONFIG" "$NUM_PROCESSES" "$MAIN_HOST" "$@"
