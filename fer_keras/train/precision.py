"""Which dtype policy a run computes in when its config says ``mixed_precision: auto``.

Mixed precision pays only where the hardware computes the narrow type natively: float16 on
a GPU with tensor cores (compute capability 7.0 and up), bfloat16 on a CPU with AVX512-BF16
or AMX through oneDNN. Elsewhere it is emulated and slower than float32: vgg_lite trained
ten times slower in bfloat16 than in float32 on an AMD EPYC without AVX-512 (issue 26).

:func:`choose_precision` is a pure function of :class:`PrecisionFacts` (CPU flags, oneDNN,
GPUs, an optional timing probe), so every case is tested without the hardware.
:func:`resolve_precision` reads this process's facts and times :func:`probe` only where the
flags leave doubt (AVX-512 without BF16, an unknown CPU or GPU); an explicit setting wins.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

#: CPU flags that mean native bfloat16 arithmetic oneDNN uses (x86: /proc/cpuinfo "flags").
NATIVE_BF16 = frozenset({"avx512_bf16", "amx_bf16"})
#: Flags worth printing next to a speed number (x86 and aarch64 names); the rest say nothing about it.
SPEED_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
               "amx_bf16", "amx_int8", "asimd", "sve", "sve2", "bf16", "i8mm")
#: The first compute capability with float16 tensor cores (Volta); older GPUs gain nothing from float16.
TENSOR_CORES = (7, 0)
#: How much faster than float32 a probed policy must be to be chosen: below it, timing noise could decide.
PROBE_MARGIN = 1.1


@dataclass(frozen=True)
class GPU:
    name: str
    compute_capability: tuple[int, int] | None  # None: not reported (a non-CUDA build)


@dataclass(frozen=True)
class Probe:
    """Training images/s of a small conv net in float32 and in ``policy``, on this machine."""

    policy: str
    float32_images_per_s: float
    policy_images_per_s: float

    @property
    def ratio(self) -> float:
        return self.policy_images_per_s / self.float32_images_per_s


@dataclass(frozen=True)
class PrecisionFacts:
    """What the process can read about its hardware: everything :func:`choose_precision` looks at."""

    cpu_flags: frozenset[str] | None  # None: no /proc/cpuinfo to read (macOS, Windows)
    onednn: bool | None  # None: TensorFlow's default on this platform is not known here
    gpus: tuple[GPU, ...] = ()
    probe: Probe | None = None


@dataclass(frozen=True)
class PrecisionChoice:
    """A ``mixed_precision`` value (``none`` is float32) and why; ``probe_for`` names the policy a timing
    probe would settle when the facts leave doubt and no probe has been run."""

    mixed_precision: str
    reason: str
    probe_for: str | None = None


def choose_precision(facts: PrecisionFacts) -> PrecisionChoice:
    """float16 on GPUs with tensor cores, bfloat16 on a CPU with native bfloat16 and oneDNN, float32 otherwise;
    where the facts leave doubt, the probe decides (float32 until one has run)."""
    if facts.gpus:
        names = ", ".join(f"{g.name} ({_capability(g)})" for g in facts.gpus)
        known = [g.compute_capability for g in facts.gpus if g.compute_capability is not None]
        if any(cc < TENSOR_CORES for cc in known):
            return PrecisionChoice("none", f"GPU {names}: below compute capability 7.0 float16 is not faster")
        if len(known) == len(facts.gpus):
            return PrecisionChoice("mixed_float16", f"GPU {names} has float16 tensor cores")
        return _probed(facts, "mixed_float16", f"GPU {names} reports no compute capability")
    flags = facts.cpu_flags
    if facts.onednn is False:
        return PrecisionChoice("none", "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0), so bfloat16 would run on "
                                       "TensorFlow's generic kernels, slower than float32")
    if flags is None:
        return _probed(facts, "mixed_bfloat16", "CPU flags unreadable")
    native = sorted(NATIVE_BF16 & flags)
    if native and facts.onednn:
        return PrecisionChoice("mixed_bfloat16", f"CPU has {', '.join(native)} and oneDNN is on")
    if native:
        return _probed(facts, "mixed_bfloat16", f"CPU has {', '.join(native)} but oneDNN may be off on this platform")
    if "avx512f" in flags:
        return _probed(facts, "mixed_bfloat16", "CPU has AVX-512 but no native bfloat16 (oneDNN emulates it)")
    if "bf16" in flags:  # aarch64: oneDNN's Arm kernels may or may not use it
        return _probed(facts, "mixed_bfloat16", "Arm CPU with bf16")
    return PrecisionChoice("none", "CPU has no native bfloat16 (no avx512_bf16 or amx_bf16): emulated bfloat16 "
                                   "is slower than float32")


def _capability(gpu: GPU) -> str:
    cc = gpu.compute_capability
    return "compute capability unknown" if cc is None else f"compute capability {cc[0]}.{cc[1]}"


def _probed(facts: PrecisionFacts, policy: str, doubt: str) -> PrecisionChoice:
    probe = facts.probe
    if probe is None or probe.policy != policy:
        return PrecisionChoice("none", f"{doubt}; float32 without a timing probe", probe_for=policy)
    verdict = (f"{doubt}; probe: {policy} {probe.policy_images_per_s:.0f} vs float32 "
               f"{probe.float32_images_per_s:.0f} images/s ({probe.ratio:.2f}x)")
    return PrecisionChoice(policy if probe.ratio >= PROBE_MARGIN else "none", verdict)


# --- reading the facts of this process ------------------------------------------------------------

def cpu_flags(cpuinfo: str | None = None) -> frozenset[str] | None:
    """The CPU's feature flags: the first "flags" (x86) or "Features" (Arm) line of /proc/cpuinfo, or of
    ``cpuinfo``; None where there is no such file or line."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def onednn_enabled(environ: dict[str, str] | None = None, machine: str | None = None) -> bool | None:
    """Whether TensorFlow runs oneDNN's kernels: TF_ENABLE_ONEDNN_OPTS when set, else TensorFlow's
    default (on for Linux x86-64 since 2.9); None where the default is not known here."""
    value = (os.environ if environ is None else environ).get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None and value.strip():
        return value.strip().lower() not in ("0", "false", "no", "off")
    machine = (machine or platform.machine()).lower()
    return True if platform.system() == "Linux" and machine in ("x86_64", "amd64") else None


def speed_flags(flags: frozenset[str] | None) -> list[str] | None:
    """The flags of ``flags`` that bear on training speed, in a fixed order (None: unreadable)."""
    return None if flags is None else [f for f in SPEED_FLAGS if f in flags]


def read_facts() -> PrecisionFacts:
    """This process's CPU flags, oneDNN setting and GPUs (with their compute capability)."""
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        cc = details.get("compute_capability")
        gpus.append(GPU(details.get("device_name", device.name), tuple(cc) if cc else None))
    return PrecisionFacts(cpu_flags=cpu_flags(), onednn=onednn_enabled(), gpus=tuple(gpus))


def probe(policy: str, *, res: int = 48, batch: int = 32, steps: int = 4) -> Probe:
    """Train a small conv net (three 3x3 convolutions, as vgg_lite's first stage) for ``steps`` batches in
    float32, then in ``policy``: a few seconds with native support, tens where the policy is emulated."""
    import keras
    import numpy as np

    from fer_keras.timing import time_calls
    from fer_keras.train.recipe import dtype_policy

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, res, res, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 7, batch), 7)
    rates = {}
    for name in ("none", policy):
        with dtype_policy(name):
            inputs = keras.Input((res, res, 3))
            h = inputs
            for filters in (32, 32, 64):
                h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
                h = keras.layers.BatchNormalization()(h)
            h = keras.layers.GlobalAveragePooling2D()(h)
            model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax", dtype="float32")(h))
        model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
        seconds = time_calls(lambda m=model: m.train_on_batch(x, y), repeats=steps, warmup=2)
        rates[name] = batch / float(np.median(seconds))
    return Probe(policy, float32_images_per_s=round(rates["none"], 1), policy_images_per_s=round(rates[policy], 1))


def resolve_precision(setting: str, *, allow_probe: bool = True,
                      facts: Callable[[], PrecisionFacts] | None = None,
                      timer: Callable[[str], Probe] | None = None) -> tuple[PrecisionChoice, PrecisionFacts | None]:
    """The run's ``mixed_precision`` and why: an explicit setting as it is (no facts read), ``auto`` from
    :func:`choose_precision` on this process's facts, with a probe where they leave doubt and
    ``allow_probe`` (a multi-worker run does not probe: its workers' timings could disagree). ``facts`` and
    ``timer`` stand in for :func:`read_facts` and :func:`probe`."""
    if setting != "auto":
        return PrecisionChoice(setting, "set explicitly"), None
    found = (facts or read_facts)()
    choice = choose_precision(found)
    if choice.probe_for and allow_probe:
        found = replace(found, probe=(timer or probe)(choice.probe_for))
        choice = choose_precision(found)
    return choice, found


def precision_record(choice: PrecisionChoice, setting: str, facts: PrecisionFacts | None) -> dict:
    """What run_info.json keeps: the setting, the policy chosen, why, and the facts read (their flags
    reduced to :data:`SPEED_FLAGS`)."""
    record: dict = {"setting": setting, "mixed_precision": choice.mixed_precision, "reason": choice.reason}
    if facts is not None:
        record.update(cpu_flags=speed_flags(facts.cpu_flags), onednn=facts.onednn,
                      gpus=[asdict(g) for g in facts.gpus], probe=asdict(facts.probe) if facts.probe else None)
    return record


def precision_line(choice: PrecisionChoice, setting: str) -> str:
    """``precision mixed_bfloat16 (auto: CPU has avx512_bf16 and oneDNN is on)``: a run's first log line."""
    policy = "float32" if choice.mixed_precision == "none" else choice.mixed_precision
    return f"precision {policy} ({'auto: ' if setting == 'auto' else ''}{choice.reason})"
