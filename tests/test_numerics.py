"""retrieval.numerics: the AVX2 hold on x86 CPU kernels, its switch, and its report."""

import os
import subprocess
import sys

import pytest

from retrieval import numerics
from user_error import user_error

AVX2_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
OLD_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse sse2 avx\n"


def test_choice_defaults_to_avx2_and_refuses_other_values():
    assert numerics.choice({}) == "avx2"
    assert numerics.choice({"HMAT_CPU_ISA": " Native "}) == "native"
    with pytest.raises(ValueError, match=r"HMAT_CPU_ISA='avx512': expected one of avx2, native"):
        numerics.choice({"HMAT_CPU_ISA": "avx512"})


def test_has_avx2_reads_the_flags_line_and_the_architecture():
    assert numerics.has_avx2(AVX2_CPUINFO, "x86_64")
    assert not numerics.has_avx2(OLD_CPUINFO, "x86_64")
    assert not numerics.has_avx2(AVX2_CPUINFO, "aarch64")
    assert not numerics.has_avx2("flags : avx2x\n", "x86_64")  # a whole flag, not a prefix


def test_pin_sets_only_what_the_user_left_unset(monkeypatch):
    monkeypatch.setattr(numerics, "has_avx2", lambda *a: True)
    env = {"MKL_CBWR": "COMPATIBLE"}
    added = numerics.pin_cpu_isa(env)
    assert added == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert env["MKL_CBWR"] == "COMPATIBLE"
    assert numerics.pin_cpu_isa({"HMAT_CPU_ISA": "native"}) == {}
    monkeypatch.setattr(numerics, "has_avx2", lambda *a: False)
    assert numerics.pin_cpu_isa({}) == {}  # no AVX2 (or not x86): nothing to hold


def _capability(**env) -> str:
    code = "import retrieval, torch; print(torch.backends.cpu.get_cpu_capability())"
    clean = {k: v for k, v in os.environ.items() if k not in (*numerics.PORTABLE_ENV, numerics.SWITCH)}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not numerics.has_avx2(), reason="the hold applies to x86 CPUs with AVX2")
def test_importing_retrieval_before_torch_holds_aten_to_avx2():
    assert _capability() == "AVX2"
    assert _capability(ATEN_CPU_CAPABILITY="default") == "DEFAULT"  # the user's own setting wins
    native = _capability(HMAT_CPU_ISA="native")
    assert native in ("AVX2", "AVX512")  # the CPU's widest, not forced


def test_faiss_follows_the_hold():
    import faiss

    from retrieval import metrics  # noqa: F401 (importing the search pins faiss)

    config = getattr(faiss, "SIMDConfig", None)
    if config is None or not config.has_dynamic_dispatch() or not numerics.portable():
        pytest.skip("this faiss build does not dispatch at run time, or the hold is off")
    assert config.get_level_name() == "AVX2"


def test_cpu_numerics_names_the_kernels_and_the_mode():
    capability, mode = numerics.cpu_numerics().split()
    assert capability.isupper() and mode in ("(portable)", "(native)")


def test_a_bad_switch_is_one_line_before_any_work(capsys, monkeypatch):
    from benchmarks import run

    monkeypatch.setenv("HMAT_CPU_ISA", "avx-512")
    err = user_error(capsys, run.main, ["--suite", "retrieval"])
    assert "HMAT_CPU_ISA='avx-512': expected one of avx2, native" in err


def test_cpu_model_names_the_first_processor_and_its_caches(tmp_path):
    info = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
            "model name\t: Intel(R) Xeon(R) Platinum 8480C\nflags\t\t: fpu avx2\n\n"
            "processor\t: 1\nmodel name\t: Another CPU\n")
    for name, (level, kind, size) in {"index0": ("1", "Data", "48K"), "index1": ("1", "Instruction", "32K"),
                                      "index2": ("2", "Unified", "2048K"), "index3": ("3", "Unified", "107520K")}.items():
        (tmp_path / name).mkdir()
        for key, value in (("level", level), ("type", kind), ("size", size)):
            (tmp_path / name / key).write_text(value + "\n")
    assert numerics.cpu_model(info, str(tmp_path)) == (
        "Intel(R) Xeon(R) Platinum 8480C (family 6 model 143; L2 2048K, L3 107520K)")
    assert numerics.cpu_model(info, str(tmp_path / "none")) == "Intel(R) Xeon(R) Platinum 8480C (family 6 model 143)"
    assert numerics.cpu_model("processor\t: 0\nflags\t: avx2\n", str(tmp_path)) == ""  # no model name: unknown
