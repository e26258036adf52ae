"""compare.py: the table of what differed, the sort order and the best run, the picture and the terminal chart,
the samples, and folders that are not finished runs. Run folders are written here file by file, as the
scripts write them; one test compares two real tiny runs end to end."""
import concurrent.futures
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, load, run_script, tiny_args

compare = load('compare')

GPT = dict(input_path='input.txt', out_dir='out/gpt', seed=1337, device='auto', dtype='auto', resume=False,
           sample_only=False, batch_size=16, block_size=64, n_layer=2, n_head=4, n_embd=64, dropout=0.0,
           max_iters=100, learning_rate=1e-3, eval_interval=50, log_interval=10, prompt='\n')
BIGRAM = dict(input_path='input.txt', out_dir='out/bigram', seed=1337, device='auto', dtype='auto', resume=False,
              sample_only=False, batch_size=64, block_size=64, max_iters=100, learning_rate=3e-2, eval_interval=50,
              log_interval=10, prompt='\n')
SAMPLE = ("\nFirst Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
          "First Citizen:\nYou are all resolved")
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


# ------------------------------------------------------------------------------ helpers
def write_run(folder, val_loss_full=2.0, script='gpt.py', finished=True, sample=SAMPLE, sample_name='samples_1234abcd.txt',
              params=1000, checkpoint=True, text_sha256=None, **overrides):
    """A run folder as the scripts leave it: metrics.jsonl, a sample file, ckpt.pt (at the last step; with
    checkpoint=False, bytes that are not one) and, once finished, summary.json."""
    config = dict(GPT if script == 'gpt.py' else BIGRAM, out_dir=str(folder))
    config.update(overrides)
    os.makedirs(folder)
    with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
        for step, loss in ((0, 4.17), (50, val_loss_full + 0.5), (100, val_loss_full + 0.01)):
            f.write(json.dumps({'step': step, 'train_loss': loss - 0.02, 'val_loss': loss, 'lr': 1e-3,
                                'elapsed': step / 10, 'tokens_per_second': 20000.0}) + '\n')
    if checkpoint:
        write_checkpoint(folder, script, config, config['max_iters'], params)
    else:
        with open(os.path.join(folder, 'ckpt.pt'), 'wb') as f:
            f.write(b'PK\x03\x04 a damaged checkpoint')
    if sample is not None:
        write_sample_file(os.path.join(folder, sample_name), script, config, sample, params=params)
    if finished:
        summary = {'script': script, 'config': config, 'iters': config['max_iters'], 'train_loss': val_loss_full - 0.02,
                   'val_loss': val_loss_full + 0.01, 'val_loss_full': val_loss_full, 'train_seconds': 12.5,
                   'tokens_per_second': 20000.0, 'device': 'cpu', 'dtype': 'bfloat16', 'params': params,
                   'samples_path': os.path.join(config['out_dir'], sample_name)}
        if text_sha256:
            summary['text_sha256'] = text_sha256
        with open(os.path.join(folder, 'summary.json'), 'w') as f:
            json.dump(summary, f)
    return str(folder)


def write_checkpoint(folder, script, config, step, params=1000, dtype='bfloat16'):
    """ckpt.pt with what save_checkpoint writes that compare.py reads: 10 s of training at 20,000 tokens/s."""
    checkpoint = {'script': script, 'model': {'weight': torch.zeros(params)}, 'config': config, 'step': step,
                  'dtype': dtype, 'tokens': 160000, 'step_seconds': 8.0, 'eval_seconds': 2.0, 'losses': {}}
    torch.save(checkpoint, os.path.join(folder, 'ckpt.pt'))


def write_sample_file(path, script, config, text, ran_on='device cpu, trained in bfloat16, sampled in float32',
                      params=1000, sampling=None):
    """A sample file in write_samples' layout: # lines, name = value lines, then each sample under its marker; with
    sampling, the name = value lines under '# trained with:' and the sampling's under '# sampled with:'."""
    header = [f"# {script} samples: diff two sample files to see what changed between runs",
              f"# torch 2.13.0+cpu, {ran_on}, {params:,} parameters", "# step 100: train loss 2.0000"]
    header += ["# trained with:"] if sampling else []
    header += [f"{name} = {value!r}" for name, value in config.items() if name not in ('resume', 'sample_only')]
    header += ["# sampled with:"] + [f"{name} = {value!r}" for name, value in sampling.items()] if sampling else []
    body = [f"\n-------- sample {i} of 2 --------\n{text if i == 1 else 'the second sample'}" for i in (1, 2)]
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(header) + '\n' + '\n'.join(body) + '\n')


def table(output):
    """The header cells and the rows (best mark, cells) of the table compare.py printed."""
    lines = output.splitlines()
    rows = itertools.takewhile(lambda line: line[:3] in ('*  ', '   '), lines[2:])
    return lines[0].split(), [(line.startswith('*'), line[3:].split()) for line in rows]


def run_compare(args, cwd, block_matplotlib=False):
    """compare.py as a person runs it; with block_matplotlib, in a Python where `import matplotlib` fails."""
    block = "import sys; sys.modules['matplotlib'] = None; " if block_matplotlib else "import sys; "
    code = block + (f"import runpy; sys.argv = ['compare.py'] + {args!r}; "
                    f"runpy.run_path({os.path.join(ROOT, 'compare.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, '-c', code], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert 'Traceback' not in result.stdout + result.stderr, result.stderr
    return result


@pytest.fixture
def no_picture(monkeypatch):
    """compare.py as if matplotlib were not installed: the text chart instead of the picture (and faster)."""
    monkeypatch.setitem(sys.modules, 'matplotlib', None)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Three finished GPT runs in runs/: base, wide (n_embd 128) and fast (learning_rate 3e-3), best to worst
    wide, fast, base; they also differ in out_dir and log_interval, which are bookkeeping."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'runs' / 'base', 2.3)
    write_run(tmp_path / 'runs' / 'wide', 2.1, n_embd=128, log_interval=5)
    write_run(tmp_path / 'runs' / 'fast', 2.2, learning_rate=3e-3)
    return ['runs/base', 'runs/wide', 'runs/fast']


# ------------------------------------------------------------------------------ the table
def test_table_shows_exactly_the_settings_that_differ(runs, no_picture, capsys):
    assert compare.main(runs) == 0
    header, rows = table(capsys.readouterr().out)
    assert header == ['run', 'script', 'n_embd', 'learning_rate', 'steps', 'seconds', 'tokens/s', 'val_loss_full', 'val_bpc']
    assert {tuple(cells[:4]) for _, cells in rows} == {('runs/base', 'gpt.py', '64', '0.001'),
                                                       ('runs/wide', 'gpt.py', '128', '0.001'),
                                                       ('runs/fast', 'gpt.py', '64', '0.003')}


def test_sorted_by_val_loss_full_with_the_best_marked(runs, no_picture, capsys):
    assert compare.main(runs) == 0
    _, rows = table(capsys.readouterr().out)
    assert [cells[0] for _, cells in rows] == ['runs/wide', 'runs/fast', 'runs/base']
    assert [best for best, _ in rows] == [True, False, False]
    best = rows[0][1]
    assert best[-5:] == ['100', '12.5', '20,000', '2.1000', f"{2.1 / math.log(2):.4f}"]


def test_sort_none_keeps_the_order_given(runs, no_picture, capsys):
    assert compare.main(runs + ['--sort=none']) == 0
    _, rows = table(capsys.readouterr().out)
    assert [cells[0] for _, cells in rows] == runs
    assert [best for best, _ in rows] == [False, True, False]


def test_val_bpc_is_taken_from_the_summary_when_it_has_one(tmp_path, monkeypatch, no_picture, capsys):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'a', 2.0)
    with open(tmp_path / 'a' / 'summary.json') as f:
        summary = json.load(f)
    with open(tmp_path / 'a' / 'summary.json', 'w') as f:
        json.dump(dict(summary, val_bpc=2.5), f)
    assert compare.main(['a']) == 0
    _, rows = table(capsys.readouterr().out)
    assert rows[0][1][-2:] == ['2.0000', '2.5000']


def test_runs_of_two_scripts_compare(tmp_path, monkeypatch, no_picture, capsys):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'out' / 'gpt', 1.9)
    write_run(tmp_path / 'out' / 'bigram', 2.5, script='bigram.py')
    assert compare.main(['out/bigram', 'out/gpt']) == 0
    output = capsys.readouterr().out
    header, rows = table(output)
    assert header[:3] == ['run', 'script', 'batch_size'] and 'n_embd' in header and 'seed' not in header
    column = header.index('n_embd')
    assert [(cells[0], cells[1], cells[column]) for _, cells in rows] == [('out/gpt', 'gpt.py', '64'),
                                                                          ('out/bigram', 'bigram.py', '-')]
    assert '  1  out/gpt (gpt.py)\n' in output and '  2  out/bigram (bigram.py)\n' in output  # the chart's legend


def test_a_string_setting_is_shown_with_repr(tmp_path, monkeypatch, no_picture, capsys):
    """The default prompt is a newline: shown as '\\n', it keeps its run on one row and in one legend line."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'bg1', 2.0, script='bigram.py')
    write_run(tmp_path / 'bg2', 2.1, script='bigram.py', prompt='ROMEO:')
    assert compare.main(['bg1', 'bg2']) == 0
    output = capsys.readouterr().out
    header, rows = table(output)
    assert header[2] == 'prompt'
    assert [cells[:3] for _, cells in rows] == [['bg1', 'bigram.py', r"'\n'"], ['bg2', 'bigram.py', "'ROMEO:'"]]
    assert "  1  bg1 prompt='\\n'\n" in output and "  2  bg2 prompt='ROMEO:'\n" in output  # the chart's legend


# ------------------------------------------------------------------------------ the curves
def test_the_picture_is_written_beside_the_runs(runs, capsys):
    pytest.importorskip('matplotlib')
    assert compare.main(runs) == 0
    with open('runs/compare.png', 'rb') as f:
        assert f.read(8) == PNG_MAGIC
    assert 'wrote runs/compare.png' in capsys.readouterr().out
    assert compare.main(runs[:1] + ['--png=elsewhere.png']) == 0
    with open('elsewhere.png', 'rb') as f:
        assert f.read(8) == PNG_MAGIC


def test_without_matplotlib_the_val_curves_are_drawn_in_the_terminal(runs, tmp_path):
    result = run_compare(runs + ['--sort=none'], cwd=tmp_path, block_matplotlib=True)
    assert result.returncode == 0, result.stderr
    chart = result.stdout.split('val loss against step\n')[1].split('\n\n')[0].splitlines()
    rows = [line.split('|', 1)[1] for line in chart if '|' in line]
    assert len(rows) == compare.CHART_ROWS
    assert chart[len(rows) + 2:len(rows) + 5] == ['  1  runs/base n_embd=64 learning_rate=0.001',
                                                  '  2  runs/wide n_embd=128 learning_rate=0.001',
                                                  '  3  runs/fast n_embd=64 learning_rate=0.003']
    assert rows[-1].rstrip().endswith('2')  # the wide run ends lowest
    assert '1' in rows[0] and '3' in ''.join(rows)  # the base run starts highest (after step 0)
    assert 'pip install -r requirements-extra.txt' in result.stdout
    assert not os.path.exists(tmp_path / 'runs' / 'compare.png')


def curves_file(folder, points):
    os.makedirs(folder)
    with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
        for step, loss in points:
            f.write(json.dumps({'step': step, 'train_loss': loss, 'val_loss': loss, 'elapsed': step / 10}) + '\n')


def test_short_runs_are_drawn_beside_a_long_one(tmp_path):
    """Two 40-step runs of two evaluations beside a 3000-step run: each shows in the terminal chart; the range
    holds all of a short run's points, and leaves out a long run's first."""
    long = [(0, 4.2)] + [(step, 2.6 - step / 3000) for step in range(250, 3001, 250)]
    assert compare.loss_range([long]) == (1.6, 2.6 - 250 / 3000)
    assert compare.loss_range([long, [(0, 4.19), (40, 3.3)]]) == (1.6, 4.19)
    curves_file(tmp_path / 'runs' / 'long', long)
    curves_file(tmp_path / 'runs' / 'short', [(0, 4.19), (40, 3.3)])
    curves_file(tmp_path / 'runs' / 'short2', [(0, 4.18), (40, 3.0)])
    result = run_compare(['runs/long', 'runs/short', 'runs/short2', '--sort=none'], cwd=tmp_path, block_matplotlib=True)
    chart = result.stdout.split('val loss against step\n')[1].split('\n\n')[0]
    assert all(mark in chart.split('+---')[0] for mark in '123')


def test_runs_in_unrelated_places_put_the_picture_in_the_current_folder(runs):
    base, wide, elsewhere = {'folder': 'runs/base'}, {'folder': 'runs/wide'}, {'folder': '/elsewhere/a b/run 1'}
    assert compare.default_png_path([base, wide]) == os.path.join('runs', 'compare.png')
    assert compare.default_png_path([base, elsewhere]) == 'compare.png'  # not /compare.png: their common folder is /


# ------------------------------------------------------------------------------ the samples
def test_the_first_lines_of_each_runs_first_sample(runs, no_picture, capsys):
    assert compare.main(runs) == 0
    output = capsys.readouterr().out
    samples = output.split("first sample\n")[1]
    first_lines = '\n'.join(SAMPLE.strip('\n').splitlines()[:compare.SAMPLE_LINES])
    for folder in runs:
        assert f"==== {folder} (gpt.py) ====\n{first_lines}\n" in samples
    assert samples.count('First Citizen:') == len(runs)  # its 7th line is the second 'First Citizen:'
    assert 'the second sample' not in samples


def test_the_sample_file_named_in_the_summary_is_shown_even_after_the_run_moved(tmp_path, monkeypatch, no_picture,
                                                                                capsys):
    monkeypatch.chdir(tmp_path)
    latest = write_run(tmp_path / 'out' / 'gpt', 2.0, sample='the latest run')
    moved = write_run(tmp_path / 'out' / 'gpt-20261123-173005', 2.1, sample='the run moved aside',
                      out_dir=latest)  # its summary names out/gpt/samples_1234abcd.txt
    write_sample_file(os.path.join(moved, 'samples_0000aaaa.txt'), 'gpt.py', GPT, 'an older sample file')
    os.utime(os.path.join(moved, 'samples_0000aaaa.txt'), (0, 0))
    assert compare.main([]) == 0
    samples = capsys.readouterr().out.split("first sample\n")[1]
    assert "==== out/gpt (gpt.py) ====\nthe latest run\n" in samples
    assert "==== out/gpt-20261123-173005 (gpt.py) ====\nthe run moved aside\n" in samples


def test_without_a_summary_the_oldest_sample_file_is_shown(tmp_path, monkeypatch, no_picture, capsys):
    monkeypatch.chdir(tmp_path)
    folder = write_run(tmp_path / 'run', 2.0, finished=False, sample='trained', sample_name='samples_2222bbbb.txt')
    write_sample_file(os.path.join(folder, 'samples_1111aaaa.txt'), 'gpt.py', GPT, 'from --sample_only later')
    os.utime(os.path.join(folder, 'samples_2222bbbb.txt'), (1, 1))
    assert compare.main(['run']) == 0
    assert "==== run (gpt.py) ====\ntrained\n" in capsys.readouterr().out


# ------------------------------------------------------------------------------ folders that are not finished runs
def test_no_arguments_compares_every_run_under_out(tmp_path, monkeypatch, no_picture, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ('gpt', 'gpt-20261123-173005', 'more/mlp'):
        write_run(tmp_path / 'out' / name, 2.0)
    (tmp_path / 'out' / 'empty').mkdir()
    assert compare.main([]) == 0
    _, rows = table(capsys.readouterr().out)
    assert [cells[0] for _, cells in rows] == ['out/gpt', 'out/gpt-20261123-173005', 'out/more/mlp']


def test_odd_folders_are_shown_as_what_they_are(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'finished', 2.0)
    write_run(tmp_path / 'interrupted', 2.2, finished=False, sample=None, checkpoint=False)  # damaged
    write_run(tmp_path / 'resumed', 2.4, finished=False, n_embd=96)  # interrupted, with a sample file of earlier
    write_run(tmp_path / 'garbled', 2.1)
    (tmp_path / 'garbled' / 'summary.json').write_text('{"script": "gpt.py", "config": {')
    with open(tmp_path / 'garbled' / 'metrics.jsonl', 'a') as f:
        f.write('{"step": 150, "train_lo')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'todo.txt').write_text('try a wider model')
    (tmp_path / 'a_file.txt').write_text('not a folder')
    args = ['interrupted', 'resumed', 'garbled', 'finished', 'empty', 'notes', 'a_file.txt', '--png=curves.png']
    assert compare.main(args) == 0
    output = capsys.readouterr().out
    header, rows = table(output)
    assert header[2] == 'n_embd'
    assert [(best, cells[:3], cells[-2:]) for best, cells in rows] == [
        (True, ['finished', 'gpt.py', '64'], ['2.0000', f"{2.0 / math.log(2):.4f}"]),
        (False, ['interrupted', '?', '?'], ['-', '-']),
        (False, ['resumed', 'gpt.py', '96'], ['-', '-']),
        (False, ['garbled', 'gpt.py', '64'], ['-', '-'])]
    assert rows[1][1][3:5] == ['100', '10.0']  # the last evaluation's step and seconds
    assert ("interrupted: unfinished: metrics.jsonl, ckpt.pt, no summary.json (interrupted, or still running); "
            "ckpt.pt unreadable (damaged, or not a checkpoint)\n") in output
    assert "garbled: summary.json unreadable (" in output
    assert "1 unreadable line(s) of metrics.jsonl left out" in output
    assert "empty: an empty folder\n" in output
    assert "notes: not a run: no summary.json, metrics.jsonl or ckpt.pt in it\n" in output
    assert "a_file.txt: a file, not a run folder\n" in output
    assert "==== interrupted (?) ====\n(no sample file)\n" in output


@pytest.mark.parametrize('ran_on', ['device cpu, trained in bfloat16, sampled in float32',
                                    'device cpu, dtype bfloat16'])  # sample files of before the 'trained in' header
def test_an_unfinished_run_ran_on_what_its_sample_file_says(tmp_path, monkeypatch, no_picture, capsys, ran_on):
    """Its checkpoint unreadable: the device and dtype in the sample file's header ('dtype bfloat16' in older
    files), not the config's 'auto'."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'finished', 2.0)
    folder = write_run(tmp_path / 'interrupted', 2.2, finished=False, sample=None, n_embd=96, checkpoint=False)
    write_sample_file(os.path.join(folder, 'samples_1234abcd.txt'), 'gpt.py', dict(GPT, n_embd=96), SAMPLE, ran_on)
    assert compare.main(['finished', 'interrupted']) == 0
    header, rows = table(capsys.readouterr().out)
    assert header[2:4] == ['n_embd', 'steps']
    assert [cells[:3] for _, cells in rows] == [['finished', 'gpt.py', '64'], ['interrupted', 'gpt.py', '96']]


def test_the_parameter_count_is_a_column_when_it_differs(tmp_path, monkeypatch, no_picture, capsys):
    """Model code edited between runs (4 * n_embd made 2 * n_embd): no setting differs, the parameter count does;
    an unfinished run's count is in its sample file's header."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'g4', 2.0, params=16897)
    write_run(tmp_path / 'g2', 2.1, params=12737)
    write_run(tmp_path / 'g2-interrupted', 2.2, params=12737, finished=False)
    assert compare.main(['g4', 'g2', 'g2-interrupted']) == 0
    header, rows = table(capsys.readouterr().out)
    assert header[2:4] == ['params', 'steps']
    assert [cells[:3] for _, cells in rows] == [['g4', 'gpt.py', '16,897'], ['g2', 'gpt.py', '12,737'],
                                                ['g2-interrupted', 'gpt.py', '12,737']]


def test_the_number_of_processes_is_a_column_when_it_differs(tmp_path, monkeypatch, no_picture, capsys):
    """torchrun with 2 processes and one process: the same settings, other dropout masks (seeded by rank), so other
    losses; summary.json's processes tells them apart (an unfinished run's is not known: '?', alike any)."""
    monkeypatch.chdir(tmp_path)
    for name, processes in (('one', 1), ('two', 2)):
        folder = write_run(tmp_path / name, 2.0 + processes / 100)
        with open(os.path.join(folder, 'summary.json')) as f:
            summary = json.load(f)
        with open(os.path.join(folder, 'summary.json'), 'w') as f:
            json.dump(dict(summary, processes=processes), f)
    write_run(tmp_path / 'interrupted', 2.2, finished=False)
    assert compare.main(['one', 'two', 'interrupted']) == 0
    header, rows = table(capsys.readouterr().out)
    assert header[2:4] == ['processes', 'steps']
    assert [cells[:3] for _, cells in rows] == [['one', 'gpt.py', '1'], ['two', 'gpt.py', '2'],
                                                ['interrupted', 'gpt.py', '?']]


def test_an_unfinished_runs_settings_are_what_it_trained_with_not_what_it_sampled_with(tmp_path, monkeypatch,
                                                                                        no_picture, capsys):
    """--sample_only=true --temperature=0.5 --seed=7 on an interrupted run: its sample file's '# sampled with:'
    lines are not its training settings."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'finished', 2.0)
    folder = write_run(tmp_path / 'interrupted', 2.2, finished=False, sample=None, n_embd=96)
    sampling = dict(seed=7, device='auto', dtype='auto', num_samples=2, max_new_tokens=500, temperature=0.5,
                    top_k=None, prompt='\n')
    write_sample_file(os.path.join(folder, 'samples_1234abcd.txt'), 'gpt.py', dict(GPT, n_embd=96), SAMPLE,
                      sampling=sampling)
    assert compare.main(['finished', 'interrupted']) == 0
    header, rows = table(capsys.readouterr().out)
    assert header[2:4] == ['n_embd', 'steps']
    assert [cells[:3] for _, cells in rows] == [['finished', 'gpt.py', '64'], ['interrupted', 'gpt.py', '96']]


@pytest.mark.parametrize('stopped', ['before an evaluation', 'killed after one'])
def test_a_run_resumed_past_its_summary_is_unfinished(tmp_path, monkeypatch, no_picture, capsys, stopped):
    """Finished at step 100, resumed to max_iters=200: Ctrl-C at step 147 saves ckpt.pt there (after summary.json);
    a kill after the evaluation at 150 leaves it in metrics.jsonl. The old summary's val_loss_full is not this run's."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'other', 2.0)
    folder = write_run(tmp_path / 'resumed', 1.9)
    if stopped == 'before an evaluation':
        write_checkpoint(folder, 'gpt.py', dict(GPT, out_dir=folder, max_iters=200), 147)
        os.utime(os.path.join(folder, 'summary.json'), (1, 1))  # ckpt.pt written after it
    else:
        with open(os.path.join(folder, 'metrics.jsonl'), 'a') as f:
            f.write(json.dumps({'step': 150, 'train_loss': 1.8, 'val_loss': 1.85, 'elapsed': 15.0}) + '\n')
    assert compare.main(['other', 'resumed']) == 0
    output = capsys.readouterr().out
    header, rows = table(output)
    steps = '147' if stopped == 'before an evaluation' else '150'
    assert [(best, cells[0], cells[-5], cells[-2]) for best, cells in rows] == [(True, 'other', '100', '2.0000'),
                                                                               (False, 'resumed', steps, '-')]
    if stopped == 'before an evaluation':  # its settings are the checkpoint's: it was resumed to 200
        assert header[2] == 'max_iters' and [cells[2] for _, cells in rows] == ['100', '200']
    assert f"resumed: unfinished: resumed past its summary.json of step 100, to step {max(147, int(steps))}" in output


def test_a_finished_runs_checkpoint_written_after_its_summary_at_the_same_step_is_still_finished(
        tmp_path, monkeypatch, no_picture, capsys):
    monkeypatch.chdir(tmp_path)
    folder = write_run(tmp_path / 'copied', 2.0)
    os.utime(os.path.join(folder, 'summary.json'), (1, 1))  # cp without -p: any order
    assert compare.main(['copied']) == 0
    output = capsys.readouterr().out
    assert table(output)[1][0][1][-5:] == ['100', '12.5', '20,000', '2.0000', f"{2.0 / math.log(2):.4f}"]
    assert 'unfinished' not in output


def test_an_interrupted_run_is_shown_from_its_checkpoint(tmp_path, monkeypatch, no_picture, capsys):
    """Ctrl-C at step 147 (last evaluation at 100), no sample file: step, seconds, settings from ckpt.pt; the
    device is not in it ('auto' in its config): no device column for that."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'finished', 2.0)
    folder = write_run(tmp_path / 'interrupted', 2.2, finished=False, sample=None, n_embd=96)
    write_checkpoint(folder, 'gpt.py', dict(GPT, out_dir=folder, n_embd=96), 147, params=2000, dtype='float32')
    assert compare.main(['finished', 'interrupted']) == 0
    header, rows = table(capsys.readouterr().out)
    assert header[2:6] == ['dtype', 'n_embd', 'params', 'steps']
    assert [cells[:-2] for _, cells in rows] == [
        ['finished', 'gpt.py', "'bfloat16'", '64', '1,000', '100', '12.5', '20,000'],
        ['interrupted', 'gpt.py', "'float32'", '96', '2,000', '147', '10.0', '20,000']]


def test_a_score_is_listed_with_its_checkpoint_and_text(tmp_path, monkeypatch, no_picture, capsys):
    """python gpt.py --eval_only=true --init_from=out/base/ckpt.pt --input_path=other.txt --out_dir=out/scores;
    and a score written into the run's own folder."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'out' / 'base', 2.0)
    score = {'script': 'gpt.py', 'checkpoint': 'out/base/ckpt.pt', 'step': 100, 'input_path': 'other.txt',
             'eval_split': 'all', 'loss': 2.5, 'bpc': 2.5 / math.log(2), 'characters': 12345}
    os.makedirs('out/scores')
    for folder, text in (('out/scores', 'other.txt'), ('out/base', 'more.txt')):
        with open(os.path.join(folder, 'eval.json'), 'w') as f:
            json.dump(dict(score, input_path=text), f)
    assert compare.main(['out/scores']) == 0
    output = capsys.readouterr().out
    assert output.splitlines()[4].split() == ['out/scores', 'gpt.py', 'out/base/ckpt.pt', 'other.txt', 'all', '100',
                                              '12,345', '2.5000', f"{2.5 / math.log(2):.4f}"]
    assert compare.main([]) == 0
    output = capsys.readouterr().out
    _, rows = table(output)
    assert [cells[0] for _, cells in rows] == ['out/base']  # a score is no training run
    scores = output.split('scores of a checkpoint on a text')[1].splitlines()[3:5]
    assert [line.split()[:4] for line in scores] == [['out/base', 'gpt.py', 'out/base/ckpt.pt', 'more.txt'],
                                                     ['out/scores', 'gpt.py', 'out/base/ckpt.pt', 'other.txt']]
    os.rename('out/base', 'out/base-20261124-030707')  # a fresh run moved it aside: its score goes with it
    assert compare.main(['out/base-20261124-030707']) == 0
    scores = capsys.readouterr().out.split('scores of a checkpoint on a text')[1].splitlines()[3:4]
    assert [line.split()[:3] for line in scores] == [['out/base-20261124-030707', 'gpt.py',
                                                      'out/base-20261124-030707/ckpt.pt']]


def test_the_picture_of_the_last_time_is_no_news(runs, no_picture, capsys):
    """python compare.py runs/*: runs/compare.png is compare.py's own; another PNG there is named."""
    open('runs/compare.png', 'wb').close()
    open('runs/other.png', 'wb').close()
    assert compare.main(runs + ['runs/compare.png', 'runs/other.png']) == 0
    output = capsys.readouterr().out
    assert 'runs/compare.png' not in output and 'runs/other.png: a file, not a run folder\n' in output


def test_the_text_is_told_by_its_sha256_not_its_path(tmp_path, monkeypatch, no_picture, capsys):
    """'input.txt' and its absolute path, of the same text, are no difference; the same path holding another text
    is one, shown as the start of its sha256."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'a', 2.0, input_path='input.txt', text_sha256='ab' * 32)
    write_run(tmp_path / 'b', 2.1, input_path=str(tmp_path / 'input.txt'), text_sha256='ab' * 32)
    write_run(tmp_path / 'c', 2.2, input_path='input.txt', text_sha256='cd' * 32)
    assert compare.main(['a', 'b']) == 0
    assert 'input_path' not in table(capsys.readouterr().out)[0]
    assert compare.main(['a', 'c']) == 0
    header, rows = table(capsys.readouterr().out)
    assert 'text_sha256' in header and 'input_path' not in header and 'cdcdcdcdcdcd' in rows[-1][1]


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='no named pipes')
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C while compare.py reads a run (here, a metrics.jsonl that is a pipe no one writes to)."""
    os.makedirs(tmp_path / 'run')
    fifo = tmp_path / 'run' / 'metrics.jsonl'
    os.mkfifo(fifo)
    code = (f"import runpy, sys; sys.argv = ['compare.py', 'run']; "
            f"runpy.run_path({os.path.join(ROOT, 'compare.py')!r}, run_name='__main__')")
    process = subprocess.Popen([sys.executable, '-c', code], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # until compare.py holds the pipe open to read
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    os.close(writer)
    assert (process.returncode, stderr) == (130, "compare.py: interrupted\n")


def test_only_folders_that_are_not_runs_exit_1(tmp_path):
    (tmp_path / 'empty').mkdir()
    result = run_compare(['empty'], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == "empty: an empty folder\n"
    assert result.stderr == "compare.py: error: no runs to compare\n"


@pytest.mark.parametrize('args, message', [
    (['runs/base', 'runs/nope'], "compare.py: error: runs/nope does not exist\n"),
    (['runs/base', '--sort=steps'], "compare.py: error: unknown option --sort=steps"),
    ([], "compare.py: error: no out/ folder here"),
    (['runs/base', '--png=curves.xyz'], "compare.py: error: --png=curves.xyz: the picture is a PNG"),
    (['runs/base', '--png=curves'], "compare.py: error: --png=curves: the picture is a PNG"),
])
def test_a_missing_path_or_an_unknown_option_is_one_line_and_exit_2(runs, tmp_path, args, message):
    result = run_compare(args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, '')
    assert result.stderr.startswith(message) and result.stderr.count('\n') == 1, result.stderr


def test_help_prints_the_usage(tmp_path):
    result = run_compare(['--help'], cwd=tmp_path)
    assert result.returncode == 0 and 'python compare.py out/base out/wide --sort=none' in result.stdout


# ------------------------------------------------------------------------------ end to end
def test_two_real_runs_of_two_scripts(tmp_path, text_file):
    def train(name):
        return run_script(name, tiny_args(name, tmp_path, text_file, out_dir=str(tmp_path / 'out' / name)))

    with concurrent.futures.ThreadPoolExecutor() as pool:  # side by side: most of each run is importing torch
        for result in pool.map(train, ('gpt', 'bigram')):
            assert result.returncode == 0, result.stderr
    result = run_compare([], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, rows = table(result.stdout)
    assert {'n_embd', 'learning_rate'} <= set(header) and 'out_dir' not in header
    assert sorted(cells[:2] for _, cells in rows) == [['out/bigram', 'bigram.py'], ['out/gpt', 'gpt.py']]
    assert all(cells[-2] != '-' for _, cells in rows) and sum(best for best, _ in rows) == 1
    assert result.stdout.count('\n==== out/') == 2 and '(no sample file)' not in result.stdout
    os.remove(tmp_path / 'out' / 'bigram' / 'summary.json')  # interrupted: its settings come from its sample file
    header, _ = table(run_compare([], cwd=tmp_path).stdout)
    assert 'n_embd' in header and 'dtype' not in header
