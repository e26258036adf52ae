"""bench/bench_gpt.py's and bench/bench_data.py's own behaviour (their figures are measured by hand): a GPU-sized
run on a CPU says so at once, Ctrl-C ends them in one line, --json writes where git ignores it, and a --json,
--data_dir or --root they cannot use is one line before any measuring."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
import torch

from conftest import ROOT, tiny_args


def load_bench(name='bench_gpt'):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'bench', f'{name}.py'))
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


def start_bench(name, args):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'bench', f'{name}.py'), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_error_line(captured, start):
    return captured.err.startswith(start) and captured.err.count('\n') == 1 and 'Traceback' not in captured.err


@pytest.mark.parametrize('name, args', [('bench_gpt', ['--steps=1', '--help']), ('bench_data', ['--mb=1', '-h'])])
def test_help_anywhere_into_a_closed_pipe_is_quiet(name, args):
    """`... --help | head -1`: the reader is gone before the help is written."""
    process = start_bench(name, args)
    process.stdout.close()
    assert process.wait(timeout=60) == 0 and process.stderr.read() == ''


def test_ctrl_c_while_measuring_the_data_is_one_line(tmp_path, text_file):
    """Ctrl-C while a measured process runs: exit 130, one line, and that process and the built text are gone."""
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    process = start_bench('bench_data', [f'--input_path={text_file}', '--mb=1', '--steps=100000', f'--data_dir={data_dir}'])
    assert process.stdout.readline().startswith('text: ')  # the text is built; measuring starts
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err == "bench_data.py: interrupted: nothing was written\n"
    assert os.listdir(data_dir) == []


@pytest.mark.parametrize('where', ['a folder', 'under /proc'])
def test_a_json_path_that_cannot_be_written_is_refused_before_measuring(where, tmp_path, text_file, capsys):
    json_path = str(tmp_path) if where == 'a folder' else '/proc/bench.json'
    bench_gpt = load_bench('bench_gpt')
    gpt_args = tiny_args('gpt', tmp_path, text_file, device='cpu')
    assert bench_gpt.run_command_line([*gpt_args, '--steps=1', '--sample_chars=5', f'--json={json_path}']) == 2
    captured = capsys.readouterr()
    assert one_error_line(captured, 'bench_gpt.py: error: json: ') and captured.out == ''
    bench_data = load_bench('bench_data')
    assert bench_data.run_command_line([f'--input_path={text_file}', f'--json={json_path}']) == 2
    captured = capsys.readouterr()
    assert one_error_line(captured, 'bench_data.py: error: json: ') and captured.out == ''


def test_a_failed_json_write_at_the_end_is_one_line(tmp_path, text_file, monkeypatch, capsys):
    """The path was writable at the start and is a folder by the end: exit 1, one line naming it."""
    json_path = str(tmp_path / 'bench.json')
    bench_gpt = load_bench('bench_gpt')
    monkeypatch.setattr(bench_gpt, 'main', lambda args: bench_gpt.report({'train_speedup': 1.2}, str(tmp_path)))
    assert bench_gpt.run_command_line([]) == 1
    assert one_error_line(capsys.readouterr(), f'bench_gpt.py: error: cannot write {tmp_path}')
    bench_data = load_bench('bench_data')
    monkeypatch.setattr(bench_data, 'bench_load', lambda *args: os.mkdir(json_path) or {})
    assert bench_data.run_command_line([f'--input_path={text_file}', f'--json={json_path}']) == 1
    assert one_error_line(capsys.readouterr(), f'bench_data.py: error: cannot write {json_path}')


def test_a_data_dir_that_does_not_exist_is_one_line(tmp_path, capsys):
    bench_data = load_bench('bench_data')
    assert bench_data.run_command_line(['--mb=1', f"--data_dir={tmp_path / 'no' / 'x'}"]) == 2
    assert one_error_line(capsys.readouterr(), 'bench_data.py: error: data_dir: ')


def test_a_root_without_the_script_is_one_line(tmp_path, capsys):
    bench_data = load_bench('bench_data')
    assert bench_data.run_command_line(['--mb=1', f'--root={tmp_path}']) == 2
    assert one_error_line(capsys.readouterr(), f"bench_data.py: error: root: no {tmp_path / 'bigram.py'}")


def test_the_measured_process_imports_the_script_from_root_only(tmp_path, text_file, monkeypatch):
    """Run from this checkout with a root that lacks bigram.py: the measure fails, never times this checkout's."""
    bench_data = load_bench('bench_data')
    monkeypatch.chdir(ROOT)
    with pytest.raises(bench_data.gpt.UsageError, match='No module named'):
        bench_data.measured([sys.executable, '-c', bench_data.LOAD, str(tmp_path), 'bigram',
                             f'--input_path={text_file}'])
