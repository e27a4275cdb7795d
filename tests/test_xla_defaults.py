"""jaxclean's XLA:CPU flag: added only where XLA_FLAGS says nothing of ynn (never over a
user's flags), on CPUs where it was measured faster unless asked, and by the CLI before JAX
starts."""

import os
import platform
import subprocess
import sys

import pytest

from jaxclean import xla_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG = xla_defaults.FLAG


AVX2 = {"sse4_2", "avx", "avx2", "fma"}  # an x86 CPU without AVX-512 (AMD Zen 3)
AVX512 = AVX2 | {"avx512f", "avx512bw", "amx_tile"}  # Intel Sapphire Rapids


@pytest.fixture
def known_jaxlib(monkeypatch):
  """A jaxlib with the flag, on an AVX2 host without accelerator plugins, whatever runs the
  tests."""
  monkeypatch.setattr(xla_defaults, "_jaxlib_release", lambda: xla_defaults.JAXLIBS[0])
  monkeypatch.setattr(xla_defaults, "_cpu_flags", lambda: AVX2)
  monkeypatch.setattr(xla_defaults.importlib.metadata, "entry_points", lambda group: [])
  monkeypatch.setattr(xla_defaults.importlib.util, "find_spec", lambda name: None)


@pytest.mark.parametrize("env, flags", [
    ({}, FLAG),
    ({"XLA_FLAGS": ""}, FLAG),
    ({"JAX_PLATFORMS": "cpu"}, FLAG),
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
     f"--xla_force_host_platform_device_count=2 {FLAG}"),
])
def test_added_when_xla_flags_say_nothing_of_ynn(known_jaxlib, env, flags):
  assert xla_defaults.apply(env)
  assert env["XLA_FLAGS"] == flags


@pytest.mark.parametrize("env", [
    {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="},
    {"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_cpu_experimental_ynn_fusion_type=individual_dot"},
    {"XLA_FLAGS": "--XLA_CPU_EXPERIMENTAL_YNN_FUSION_TYPE=eltwise"},
    {"JAXCLEAN_XLA_DEFAULTS": "0"},
    {"JAX_PLATFORMS": "cuda"},
    {"JAX_PLATFORMS": "tpu,cpu"},
])
def test_never_over_a_users_choice(known_jaxlib, env):
  before = dict(env)
  assert not xla_defaults.apply(env)
  assert env == before


def test_only_on_cpus_where_it_was_faster_unless_asked(known_jaxlib, monkeypatch):
  monkeypatch.setattr(xla_defaults, "_cpu_flags", lambda: AVX512)  # measured faster there too
  assert xla_defaults.apply({})
  monkeypatch.setattr(xla_defaults, "_cpu_flags", lambda: set())  # not x86 with AVX2: unmeasured
  assert not xla_defaults.apply({})
  env = {"JAXCLEAN_XLA_DEFAULTS": "1", "XLA_FLAGS": "--xla_dump_to=/tmp/x"}
  assert xla_defaults.apply(env)
  assert env["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {FLAG}"
  assert not xla_defaults.apply({"JAXCLEAN_XLA_DEFAULTS": "1",  # a user's ynn flag still wins
                                 "XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="})


def test_heap_setting_never_over_a_users_choice(known_jaxlib, monkeypatch):
  calls = []
  monkeypatch.setattr(xla_defaults.ctypes, "CDLL", lambda name: type(
      "Libc", (), {"mallopt": staticmethod(lambda *a: calls.append(a) or 1)}))
  for env in ({"JAXCLEAN_XLA_DEFAULTS": "0"}, {"JAX_PLATFORMS": "cuda"},
              {"MALLOC_ARENA_MAX": "4"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}):
    assert not xla_defaults.reuse_heap(env)
  assert calls == []
  monkeypatch.setattr(xla_defaults.platform, "libc_ver", lambda: ("glibc", "2.36"))
  monkeypatch.setattr(xla_defaults.platform, "system", lambda: "Linux")
  assert xla_defaults.reuse_heap({"GLIBC_TUNABLES": "glibc.rtld.nns=2"})
  assert calls == list(xla_defaults.HEAP)


def test_not_on_accelerator_hosts_or_unknown_jaxlib(known_jaxlib, monkeypatch):
  monkeypatch.setattr(xla_defaults.importlib.util, "find_spec",
                      lambda name: object() if name == "jax_plugins" else None)
  assert not xla_defaults.apply({})
  assert xla_defaults.apply({"JAX_PLATFORMS": "cpu"})  # the CPU asked for on that host
  monkeypatch.setattr(xla_defaults, "_jaxlib_release", lambda: (0, 99))
  for env in ({"JAX_PLATFORMS": "cpu"}, {"JAX_PLATFORMS": "cpu", "JAXCLEAN_XLA_DEFAULTS": "1"}):
    assert not xla_defaults.apply(env)  # the flag may not exist there: XLA would abort


@pytest.mark.skipif(xla_defaults._jaxlib_release() not in xla_defaults.JAXLIBS,
                    reason="the installed jaxlib is not one the flag applies to")
@pytest.mark.parametrize("user_flags", [None, "--xla_cpu_experimental_ynn_fusion_type="])
def test_cli_adds_it_before_jax_starts(tmp_path, user_flags):
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORM_NAME")}
  # =1: the flag on this test machine's CPU too, whichever it is.
  env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, JAXCLEAN_XLA_DEFAULTS="1")
  if user_flags is not None:
    env["XLA_FLAGS"] = user_flags
  # num_epochs=0 is refused after start-up, before anything loads: exit 2.
  proc = subprocess.run([sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
                         f"--workdir={tmp_path}", "--verbosity=0", "--config.num_epochs=0"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  expected = (f"XLA_FLAGS={FLAG!r} ({FLAG} added" if user_flags is None
              else f"XLA_FLAGS={user_flags!r}\n")
  assert expected in proc.stderr, proc.stderr[-2000:]
  if platform.libc_ver()[0] == "glibc":
    assert "malloc: one arena, no mmap, no trim" in proc.stderr, proc.stderr[-2000:]
