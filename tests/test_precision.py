"""``mixed_precision: auto`` (issue 26): one decision per kind of machine, from facts the tests hand in, so no
verdict depends on the CPU the suite runs on."""

import contextlib
import re

import pytest

from fer_keras.config import load_config, make_config
from fer_keras.runs import read_json
from fer_keras.train import loop
from fer_keras.train import precision as P
from fer_keras.train.precision import (
    GPU,
    PrecisionFacts,
    Probe,
    choose_precision,
    cpu_flags,
    onednn_enabled,
    precision_line,
    resolve_precision,
    speed_flags,
)
from fer_keras.train.recipe import dtype_policy

NO_AVX512 = frozenset({"sse4_2", "avx", "avx2", "fma"})  # the EPYC of issue 26
AVX512 = NO_AVX512 | {"avx512f", "avx512_vnni"}  # Skylake / Cascade Lake: no native bfloat16
BF16 = AVX512 | {"avx512_bf16"}  # Zen 4, Cooper Lake
AMX = AVX512 | {"amx_tile", "amx_bf16"}  # Sapphire Rapids


@pytest.mark.parametrize("facts,expected,reason", [
    (PrecisionFacts(BF16, onednn=True), "mixed_bfloat16", "CPU has avx512_bf16 and oneDNN is on"),
    (PrecisionFacts(AMX, onednn=True), "mixed_bfloat16", "CPU has amx_bf16 and oneDNN is on"),
    (PrecisionFacts(NO_AVX512, onednn=True), "none", "no native bfloat16"),
    (PrecisionFacts(BF16, onednn=False), "none", "oneDNN is off"),
    (PrecisionFacts(frozenset({"asimd", "sve"}), onednn=None), "none", "no native bfloat16"),
    (PrecisionFacts(BF16, onednn=True, gpus=(GPU("A100", (8, 0)), GPU("V100", (7, 0)))), "mixed_float16",
     "tensor cores"),
    (PrecisionFacts(BF16, onednn=True, gpus=(GPU("A100", (8, 0)), GPU("P100", (6, 0)))), "none",
     "P100 \\(compute capability 6.0\\).*below compute capability 7.0"),
])
def test_the_flags_decide_where_they_leave_no_doubt(facts, expected, reason):
    choice = choose_precision(facts)
    assert choice.mixed_precision == expected and choice.probe_for is None
    assert re.search(reason, choice.reason), choice.reason


DOUBTFUL = [
    (PrecisionFacts(AVX512, onednn=True), "mixed_bfloat16", "AVX-512 but no native bfloat16"),
    (PrecisionFacts(None, onednn=None), "mixed_bfloat16", "CPU flags unreadable"),
    (PrecisionFacts(BF16, onednn=None), "mixed_bfloat16", "oneDNN may be off"),
    (PrecisionFacts(frozenset({"asimd", "bf16"}), onednn=True), "mixed_bfloat16", "Arm CPU with bf16"),
    (PrecisionFacts(NO_AVX512, onednn=True, gpus=(GPU("Metal", None),)), "mixed_float16",
     "reports no compute capability"),
]


@pytest.mark.parametrize("facts,candidate,doubt", DOUBTFUL)
def test_where_the_flags_leave_doubt_the_probe_decides(facts, candidate, doubt):
    unprobed = choose_precision(facts)
    assert (unprobed.mixed_precision, unprobed.probe_for) == ("none", candidate) and doubt in unprobed.reason
    fast = choose_precision(PrecisionFacts(facts.cpu_flags, facts.onednn, facts.gpus, Probe(candidate, 100, 150)))
    assert fast.mixed_precision == candidate and fast.probe_for is None and "1.50x" in fast.reason
    # below the margin: float32, since timing noise alone could make the candidate look a little faster
    slow = choose_precision(PrecisionFacts(facts.cpu_flags, facts.onednn, facts.gpus, Probe(candidate, 100, 105)))
    assert slow.mixed_precision == "none" and "1.05x" in slow.reason


def test_resolve_reads_facts_and_probes_only_where_needed():
    probed = []

    def timer(policy):
        probed.append(policy)
        return Probe(policy, 100.0, 300.0)

    choice, facts = resolve_precision("auto", facts=lambda: PrecisionFacts(BF16, True), timer=timer)
    assert choice.mixed_precision == "mixed_bfloat16" and facts.probe is None and probed == []
    choice, facts = resolve_precision("auto", facts=lambda: PrecisionFacts(AVX512, True), timer=timer)
    assert choice.mixed_precision == "mixed_bfloat16" and probed == ["mixed_bfloat16"] and facts.probe.ratio == 3
    # a multi-worker run does not probe: its workers' timings could choose different policies
    choice, _ = resolve_precision("auto", allow_probe=False, facts=lambda: PrecisionFacts(AVX512, True), timer=timer)
    assert choice.mixed_precision == "none" and probed == ["mixed_bfloat16"]


@pytest.mark.parametrize("setting", ["none", "mixed_bfloat16", "mixed_float16"])
def test_an_explicit_setting_wins_and_reads_nothing(setting):
    def unread():
        raise AssertionError("an explicit setting must not read the machine")

    choice, facts = resolve_precision(setting, facts=unread, timer=unread)
    assert (choice.mixed_precision, facts) == (setting, None)
    assert precision_line(choice, setting).endswith("(set explicitly)")


def test_cpu_flags_from_x86_and_arm_cpuinfo():
    x86 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx2 avx512f avx512_bf16\nbugs\t\t: x\n"
    assert cpu_flags(x86) == {"fpu", "sse4_2", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags("processor\t: 0\nFeatures\t: fp asimd sve bf16\n") == {"fp", "asimd", "sve", "bf16"}
    assert cpu_flags("processor\t: 0\n") is None
    assert speed_flags(cpu_flags(x86)) == ["sse4_2", "avx2", "avx512f", "avx512_bf16"] and speed_flags(None) is None


@pytest.mark.parametrize("env,machine,expected", [
    ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "x86_64", False),
    ({"TF_ENABLE_ONEDNN_OPTS": "1"}, "aarch64", True),
    ({"TF_ENABLE_ONEDNN_OPTS": "false"}, "x86_64", False),
])
def test_onednn_setting_from_the_environment(env, machine, expected):
    assert onednn_enabled(env, machine) is expected


def test_onednn_default_depends_on_the_platform(monkeypatch):
    monkeypatch.setattr(P.platform, "system", lambda: "Linux")
    assert onednn_enabled({}, "x86_64") is True and onednn_enabled({}, "aarch64") is None
    monkeypatch.setattr(P.platform, "system", lambda: "Darwin")
    assert onednn_enabled({}, "x86_64") is None


def test_fast_recipe_leaves_precision_to_the_machine():
    assert load_config("configs/fast.yaml", {"dataset": "fer2013"}).mixed_precision == "auto"
    assert make_config({"mixed_precision": "auto"}).recipe == "protocol"  # a speed option: protocol runs may


@pytest.mark.parametrize("flags,policy", [(NO_AVX512, "none"), (BF16, "mixed_bfloat16")])
def test_a_run_says_first_and_records_which_policy_auto_chose(flags, policy, demo_root, tmp_path, monkeypatch,
                                                              capsys):
    """Float32 on the CPU of issue 26, bfloat16 on one with native support: the same config, two machines.
    The model is built in float32 whatever was chosen (bfloat16 is slow where it is emulated, and the tests
    run on any CPU); the policy handed to ``dtype_policy`` is what the run would compute in."""
    built_in = []

    @contextlib.contextmanager
    def recorded_policy(name):
        built_in.append(name)
        with dtype_policy("none"):
            yield

    monkeypatch.setattr(P, "read_facts", lambda: PrecisionFacts(flags, onednn=True))
    monkeypatch.setattr(loop, "dtype_policy", recorded_policy)
    cfg = make_config({"model": "sequential_simple", "res": 16, "epochs": 1, "batch": 16, "limit_per_class": 3,
                       "mixed_precision": "auto", "crossdomain": None, "tensorboard": False,
                       "data_root": str(demo_root), "out": str(tmp_path / "runs")})
    run = loop.train_run(cfg, verbose=0)
    assert built_in == [policy]
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"[{run.name}] precision {'float32' if policy == 'none' else policy} (auto: ")
    info = read_json(run / "run_info.json")
    assert info["mixed_precision"] == policy and info["precision"]["setting"] == "auto"
    assert info["precision"]["reason"] in first and info["precision"]["probe"] is None
    assert "avx2" in info["precision"]["cpu_flags"] and info["precision"]["onednn"] is True
