"""bench/bench_gpt.py's own behaviour (its figures are measured by hand): a GPU-sized run on a CPU says so at once,
Ctrl-C ends it in one line, and --json writes where git ignores it."""
import importlib.util
import json
import os
import types

import torch

from conftest import ROOT


def load_bench():
    spec = importlib.util.spec_from_file_location('bench_gpt', os.path.join(ROOT, 'bench', 'bench_gpt.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_sized_settings_on_a_cpu_say_so(capsys):
    """gpt.py's defaults on a CPU point to the CPU config before timing; configs/gpt_cpu.py says nothing."""
    bench = load_bench()
    env = types.SimpleNamespace(device=torch.device('cpu'))
    options = dict(bench.BENCH_DEFAULTS)
    for config, warned in ((bench.gpt.DEFAULTS, True), (dict(bench.gpt.DEFAULTS, **dict(
            bench.gpt.read_config_file(os.path.join(ROOT, 'configs', 'gpt_cpu.py')))), False)):
        model = bench.gpt.create_model(config, 65)
        bench.warn_if_slow(model, config, env, options)
        assert ('configs/gpt_cpu.py' in capsys.readouterr().out) == warned


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    bench = load_bench()

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, 'main', interrupted)
    assert bench.run_command_line([]) == 130
    captured = capsys.readouterr()
    assert captured.err == "bench_gpt.py: interrupted: nothing was written\n" and 'Traceback' not in captured.out


def test_json_goes_where_git_ignores_it(tmp_path, monkeypatch):
    """The documented --json path is under out/, which .gitignore covers; report creates the folder."""
    bench = load_bench()
    with open(os.path.join(ROOT, '.gitignore')) as f:
        assert 'out/' in f.read().split()
    assert '--json=out/bench.json' in bench.__doc__
    monkeypatch.chdir(tmp_path)
    bench.report({'train_speedup': 1.2, 'mfu': None}, 'out/bench.json')
    with open(tmp_path / 'out' / 'bench.json') as f:
        assert json.load(f) == {'train_speedup': 1.2, 'mfu': None}
