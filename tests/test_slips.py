"""Slips a tester made on purpose: each one used to lose a run, hang, print a traceback or say something untrue."""
import hashlib
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, load, run_script, tiny_args, tiny_config


def run(module, tmp_path, text_file, *args, **settings):
    """main() of module on the tiny run in tmp_path/out, with these settings and then these arguments."""
    return module.main(*module.parse_overrides(tiny_args(module.SCRIPT[:-3], tmp_path, text_file, **settings)
                                               + list(args), module.DEFAULTS))


@pytest.fixture(scope='module')
def bigram():
    return load('bigram')


def test_a_checkpoint_replaced_while_starting_is_not_used(bigram, tmp_path, text_file, monkeypatch):
    """A run that ends between another command's reading of its checkpoint and that command's lock replaces the
    checkpoint: the command would sample (or resume) stale weights and overwrite the run's samples. It is refused."""
    run(bigram, tmp_path, text_file)
    load_checkpoint = bigram.load_checkpoint

    def read_then_replaced(path):  # as if the run there saved its last checkpoint just after this read
        checkpoint = load_checkpoint(path)
        bigram.write_atomic(path, lambda f: torch.save(checkpoint, f))
        return checkpoint

    monkeypatch.setattr(bigram, 'load_checkpoint', read_then_replaced)
    for mode in ('--sample_only=true', '--eval_only=true', '--resume=true'):
        with pytest.raises(bigram.UsageError, match='was replaced while this command started'):
            run(bigram, tmp_path, text_file, mode)
    monkeypatch.setattr(bigram, 'load_checkpoint', load_checkpoint)
    run(bigram, tmp_path, text_file, '--sample_only=true')


def test_a_pipe_by_name_is_refused_without_waiting_for_a_writer(tmp_path):
    """Opening a FIFO that nobody writes to waits forever: it is refused before it is opened."""
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    code = f"import bigram\ntry:\n    next(bigram.read_text({str(fifo)!r}))\nexcept bigram.UsageError as e:\n    print(e)"
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert 'is not a file (a pipe?)' in result.stdout


def test_a_stopped_val_loss_full_is_nan_not_a_part(bigram):
    """Ctrl-C while val_loss_full is scored: the part scored over every character would be a wrong, low loss."""
    model = bigram.Bigram(5)
    data = torch.randint(5, (1000,))
    loss = bigram.full_loss(model, data, 8, 1, 4, torch.autocast('cpu', enabled=False), stop_requested=[2])
    assert math.isnan(loss)
    assert math.isfinite(bigram.full_loss(model, data, 8, 1, 4, torch.autocast('cpu', enabled=False)))


def test_scoring_needs_no_prompt(bigram, tmp_path, text_file):
    """eval_only never samples: a prompt file gone since training (or a prompt outside the text) does not matter."""
    prompt = tmp_path / 'prompt.txt'
    prompt.write_text('That', encoding='utf-8')  # in either test text
    run(bigram, tmp_path, text_file, f'--prompt=FILE:{prompt}')
    os.remove(prompt)
    figures = run(bigram, tmp_path, text_file, '--eval_only=true', '--eval_split=val')
    assert math.isfinite(figures['loss'])
    with pytest.raises(bigram.UsageError, match=r'cannot read the prompt file .*\(--prompt=\.\.\. gives another\)'):
        run(bigram, tmp_path, text_file, '--sample_only=true')


def test_scoring_says_which_overrides_it_ignores(bigram, tmp_path, text_file, capsys):
    """Training settings given to eval_only change nothing: it says so, as sample_only does."""
    run(bigram, tmp_path, text_file)
    capsys.readouterr()
    run(bigram, tmp_path, text_file, '--eval_only=true', '--learning_rate=0.5', '--batch_size=4')
    out = capsys.readouterr().out
    assert 'scoring takes the model as it was trained: ignored learning_rate=0.5 (trained with 0.03)' in out
    assert 'overrides: batch_size=4' in out and 'overrides: learning_rate' not in out


def test_scoring_settings_without_eval_only_are_refused(bigram, tmp_path, text_file):
    """--eval_split=val without --eval_only=true would train (and move the last run aside): refused."""
    for args in (['--eval_split=val'], ['--unknown=skip'], ['--sample_only=true', '--eval_split=val']):
        name = args[-1][2:].split('=')[0]
        with pytest.raises(bigram.UsageError, match=f"{name}: for --eval_only=true"):
            run(bigram, tmp_path, text_file, *args)
    assert not os.path.exists(tmp_path / 'out')


def test_a_config_file_copying_the_scoring_defaults_trains(bigram, tmp_path, text_file):
    """A config file made from the block at the top of the script sets eval_split and unknown to their defaults:
    that is no scoring setting given by mistake (it was refused), and a byte order mark before it is no setting."""
    config_file = tmp_path / 'copied.py'
    config_file.write_bytes(b"\xef\xbb\xbfeval_split = 'all'\nunknown = 'error'\n")
    assert run(bigram, tmp_path, text_file, str(config_file))['iters'] == 30


def test_a_step_count_with_a_time_budget_is_refused(bigram, tmp_path, text_file):
    """The budget settles max_iters and lr_decay_iters: one given as well would be replaced (and a resume command
    keeping it would train to the wrong step). Resuming a budgeted run to a new max_iters stays allowed."""
    config = tiny_config(bigram, tmp_path, text_file, time_budget=1.0)  # defaults here, not overrides
    for arg in ('--max_iters=50', '--lr_decay_iters=50'):
        with pytest.raises(bigram.UsageError, match=f"time_budget = 1 settles {arg[2:-3]} itself: drop {arg[2:-3]}, "
                                                    f"or give --time_budget=0"):
            bigram.main(*bigram.parse_overrides([arg], config))
    assert bigram.main(*bigram.parse_overrides(['--max_iters=50', '--time_budget=0'], config))['iters'] == 50
    summary = run(bigram, tmp_path, text_file, '--resume=true', '--time_budget=1', '--max_iters=60')
    assert summary['iters'] == 60


def test_a_budget_given_to_a_resume_is_said_to_change_nothing(bigram, tmp_path, text_file, capsys):
    """...and is not recorded as the run's: summary.json keeps the budget the run started with."""
    run(bigram, tmp_path, text_file)
    summary = run(bigram, tmp_path, text_file, '--resume=true', '--time_budget=5', '--max_iters=40')
    out = capsys.readouterr().out
    assert 'note: time_budget=5.0 changes nothing: a resumed run goes on to max_iters' in out
    assert summary['config']['time_budget'] == 0.0 and 'time_budget=5.0' not in out.split('overrides: ')[-1]


def test_an_out_of_range_seed_is_one_line(bigram, tmp_path, text_file):
    for seed in ('99999999999999999999', '-99999999999999999999'):
        with pytest.raises(bigram.UsageError, match=f"seed must be between -2\\*\\*63 and 2\\*\\*64 - 1, got {seed}"):
            run(bigram, tmp_path, text_file, f'--seed={seed}')


def test_two_texts_of_one_prompt_file_leave_two_sample_files(bigram, tmp_path, text_file, capsys):
    """The samples of FILE:path are named by the file's text too: changing the file never overwrites them."""
    run(bigram, tmp_path, text_file)
    prompt = tmp_path / 'prompt.txt'
    paths = []
    for text in ('That', 'LINE'):  # characters of either test text
        prompt.write_text(text, encoding='utf-8')
        paths.append(run(bigram, tmp_path, text_file, '--sample_only=true', f'--prompt=FILE:{prompt}'))
    assert paths[0] != paths[1] and all(os.path.exists(path) for path in paths)


def test_sampling_says_it_samples_in_float32(bigram, tmp_path, text_file, capsys):
    run(bigram, tmp_path, text_file, '--dtype=bfloat16')
    capsys.readouterr()
    run(bigram, tmp_path, text_file, '--sample_only=true')
    assert ', dtype float32' in capsys.readouterr().out


def test_scoring_a_short_val_split_names_the_minimum(tmp_path):
    """eval_split=val checks what it scores (the val part, padded as a whole file is), not the train split,
    and never advises a block_size the checkpoint fixes."""
    gpt = load('gpt')
    text = tmp_path / 'text.txt'
    text.write_text('abcdefghij\n' * 2000, encoding='utf-8')
    run(gpt, tmp_path, str(text))
    short = tmp_path / 'short.txt'
    short.write_text('abcdefghij' * 10, encoding='utf-8')
    figures = run(gpt, tmp_path, str(short), '--eval_only=true', '--eval_split=val')
    assert figures['characters'] == 9
    short.write_text('abcdefghij', encoding='utf-8')
    with pytest.raises(gpt.UsageError) as info:
        run(gpt, tmp_path, str(short), '--eval_only=true', '--eval_split=val')
    assert 'has too few characters to score (1; gpt.py needs 2)' in str(info.value)
    assert 'block_size' not in str(info.value)


def test_an_incomplete_checkpoint_is_one_line(bigram, tmp_path, text_file):
    run(bigram, tmp_path, text_file)
    path = tmp_path / 'out' / 'ckpt.pt'
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint['chars']
    torch.save(checkpoint, path)
    for mode in ('--sample_only=true', '--eval_only=true', '--resume=true'):
        with pytest.raises(bigram.UsageError, match='is not a checkpoint of bigram.py'):
            run(bigram, tmp_path, text_file, mode)


def test_a_checkpoint_older_than_a_model_setting(tmp_path, text_file):
    """A gpt.py checkpoint from before `rope` existed (learned positions): init_from never fails with a KeyError;
    the error says which weights do not fit."""
    gpt = load('gpt')
    run(gpt, tmp_path, text_file, '--rope=false')
    path = tmp_path / 'out' / 'ckpt.pt'
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint['config']['rope']
    torch.save(checkpoint, path)
    with pytest.raises(gpt.UsageError, match=r'does not fit this model: .*Unexpected key\(s\) in state_dict: '
                                             r'"position_embedding'):
        run(gpt, tmp_path, text_file, f'--init_from={path}', f"--out_dir={tmp_path / 'new'}")
    summary = run(gpt, tmp_path, text_file, f'--init_from={path}', '--rope=false', f"--out_dir={tmp_path / 'new'}")
    assert summary['config']['init_from'] == str(path)


def test_an_empty_out_dir_is_refused(bigram, tmp_path, text_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(bigram.UsageError, match='out_dir is empty'):
        run(bigram, tmp_path, text_file, '--out_dir=')
    assert os.listdir(tmp_path) == ['text.txt']


def test_samples_of_another_model_are_moved_aside_too(bigram, tmp_path, text_file):
    """sample_only --init_from=X into a new folder leaves X's samples there: a fresh run there moves them aside."""
    run(bigram, tmp_path, text_file, f"--out_dir={tmp_path / 'a'}")
    run(bigram, tmp_path, text_file, '--sample_only=true', f"--init_from={tmp_path / 'a' / 'ckpt.pt'}")
    samples = [name for name in os.listdir(tmp_path / 'out') if name.startswith('samples_')]
    run(bigram, tmp_path, text_file)
    aside = [name for name in os.listdir(tmp_path) if name.startswith('out-')]
    assert len(aside) == 1 and sorted(os.listdir(tmp_path / aside[0])) == samples
    for mode in ('--sample_only=true', '--eval_only=true'):  # into a folder that holds a run: they would pass for its
        with pytest.raises(bigram.UsageError, match=f"out_dir {tmp_path / 'out'} holds another run: give its samples"):
            run(bigram, tmp_path, text_file, mode, f"--init_from={tmp_path / 'a' / 'ckpt.pt'}")


def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path, text_file):
    """`python bigram.py | head -3`: the run goes on to the end, quietly, and keeps every file."""
    args = tiny_args('bigram', tmp_path, text_file, max_iters=200, eval_interval=20)
    command = [sys.executable, os.path.join(ROOT, 'bigram.py'), *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, OMP_NUM_THREADS='1'))
    process.stdout.readline()
    process.stdout.close()
    stderr = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 0 and 'Traceback' not in stderr and 'Broken pipe' not in stderr, stderr
    with open(tmp_path / 'out' / 'summary.json') as f:
        assert json.load(f)['iters'] == 200
    help_text = subprocess.run(f"{sys.executable} bigram.py --help | head -1", shell=True, cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
    assert help_text.stdout.strip() and not help_text.stderr, help_text.stderr


@pytest.mark.parametrize('trouble', ['a directory in the way', 'a full disk'])
def test_a_write_that_fails_mid_run_is_one_line(tmp_path, text_file, trouble):
    """A checkpoint that cannot be written (a full disk: torch.save then says RuntimeError) is one line naming it,
    exit code 1, not a traceback."""
    if trouble == 'a directory in the way':
        os.makedirs(tmp_path / 'out' / 'ckpt.pt.tmp')
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))) if trouble == 'a full disk' else None
    result = run_script('bigram', tiny_args('bigram', tmp_path, text_file), preexec_fn=limit)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
    assert lines[-1].startswith(f"bigram.py: error: cannot write {tmp_path / 'out' / 'ckpt.pt'}: "), lines[-1]


def test_without_fcntl_runs_go_unlocked_and_nothing_becomes_a_hyperparameter(tmp_path, text_file, monkeypatch):
    """Windows has no fcntl: out_dir goes unlocked there. Its stand-in `fcntl = None` used to be gathered into
    DEFAULTS, so --fcntl=7 was taken and written into summary.json, the sample header and the sample file's name."""
    monkeypatch.setitem(sys.modules, 'fcntl', None)  # `import fcntl` raises ImportError, as on Windows
    spec = importlib.util.spec_from_file_location('bigram_on_windows', os.path.join(ROOT, 'bigram.py'))
    bigram = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bigram)
    assert 'fcntl' not in bigram.DEFAULTS
    summary = run(bigram, tmp_path, text_file)
    assert os.path.exists(summary['samples_path']) and 'fcntl' not in summary['config']


def edited_at_the_top(module, monkeypatch, **values):
    """As if these values had been written at the top of the script since the last run."""
    monkeypatch.setattr(module, 'DEFAULTS', dict(module.DEFAULTS, **values))


def test_sampling_settings_edited_at_the_top_since_a_checkpoint_are_taken(bigram, tmp_path, text_file, monkeypatch,
                                                                          capsys):
    """Editing the hyperparameters in place is how the scripts are used: --sample_only takes a sampling setting
    edited at the top since the checkpoint was written, as it takes --temperature (it kept the checkpoint's 1.0
    without a word). A training setting edited there leaves the model as it was trained, and says nothing."""
    run(bigram, tmp_path, text_file)
    edited_at_the_top(bigram, monkeypatch, temperature=0.0, learning_rate=0.5)
    with open(run(bigram, tmp_path, text_file, '--sample_only=true'), encoding='utf-8') as f:
        assert 'temperature = 0.0' in f.read()
    out = capsys.readouterr().out
    assert 'note: changed at the top of bigram.py since this checkpoint, so taken as given: temperature=0.0\n' in out
    assert 'learning_rate' not in out


def test_a_resumed_run_keeps_its_own_settings_and_says_what_an_edit_or_override_changes(bigram, tmp_path, text_file,
                                                                                        monkeypatch, capsys):
    """Editing the top of the script for the next run must not change an earlier run that is resumed (its own
    records would then show the new value for all its steps): a note names the edits it leaves out. An override
    given to the resume does change it, and the overrides line says what each one was."""
    args = [arg for arg in tiny_args('bigram', tmp_path, text_file) if not arg.startswith('--max_iters=')]
    bigram.main(*bigram.parse_overrides(args + ['--max_iters=20', '--lr_decay_iters=40'], bigram.DEFAULTS))
    edited_at_the_top(bigram, monkeypatch, max_iters=50, learning_rate=0.5)
    capsys.readouterr()
    summary = bigram.main(*bigram.parse_overrides(args + ['--resume=true', '--max_iters=30'], bigram.DEFAULTS))
    out = capsys.readouterr().out
    assert summary['iters'] == 30 and summary['config']['learning_rate'] == 0.03
    assert ("note: changed at the top of bigram.py since this checkpoint, not taken (a resumed run keeps its own "
            "settings; --name=value changes one): learning_rate=0.5\n") in out  # max_iters is given here
    assert 'max_iters=30 (was 20)' in out and 'batch_size=8,' in out  # an unchanged one: no (was ...)


def test_a_model_shape_edited_at_the_top_is_refused_from_weights_and_kept_on_resume(tmp_path, text_file, monkeypatch):
    """n_layer edited at the top since a checkpoint: a new run from its weights cannot have that shape and is
    refused, as --n_layer would be (it took the checkpoint's without a word); a resume keeps its own shape."""
    gpt = load('gpt')
    args = [arg for arg in tiny_args('gpt', tmp_path, text_file) if not arg.startswith('--n_layer=')]
    edited_at_the_top(gpt, monkeypatch, n_layer=2)
    gpt.main(*gpt.parse_overrides(args, gpt.DEFAULTS))
    edited_at_the_top(gpt, monkeypatch, n_layer=3)
    start = [f"--init_from={tmp_path / 'out' / 'ckpt.pt'}", f"--out_dir={tmp_path / 'tuned'}"]
    with pytest.raises(gpt.UsageError, match='n_layer = 3 here, but the checkpoint was trained with n_layer = 2: '
                                             'drop the change'):
        gpt.main(*gpt.parse_overrides(args + start, gpt.DEFAULTS))
    assert gpt.main(*gpt.parse_overrides(args + ['--resume=true', '--max_iters=32'], gpt.DEFAULTS))['iters'] == 32


def test_help_survives_edits_to_the_hyperparameter_comments(tmp_path):
    """--help reads the hyperparameters from the file between its markers: a comment like `# --- mine` inside the
    block cut the list short, and a deleted marker line was an IndexError traceback."""
    with open(os.path.join(ROOT, 'bigram.py'), encoding='utf-8') as f:
        source = f.read()
    edited = {'own-comment': source.replace('\n# sampling\n', '\n# --- sampling (mine)\n'),
              'no-marker': source.replace('# ' + '-' * 78 + ' hyperparameters\n', ''),
              'no-end-marker': source.replace('# ' + '-' * 78 + '\nDEFAULTS', 'DEFAULTS')}
    for name, text in edited.items():
        assert text != source, name
        (tmp_path / f'{name}.py').write_text(text, encoding='utf-8')
        result = subprocess.run([sys.executable, str(tmp_path / f'{name}.py'), '--help'], capture_output=True, text=True)
        assert result.returncode == 0 and result.stderr == '', result.stderr
        assert 'temperature = 1.0' in result.stdout or name == 'no-marker'  # that one lists none, and says nothing
        assert 'DEFAULTS' not in result.stdout and 'class Bigram' not in result.stdout  # nor the rest of the file


def test_a_budgeted_run_from_weights_with_max_iters_edited_at_the_top(bigram, tmp_path, text_file, monkeypatch):
    """Starting from a checkpoint's weights, only its model shape is the checkpoint's: a max_iters edited at the top
    since then is no step count given to the budget (it was refused: `time_budget = 2 settles max_iters itself`)."""
    run(bigram, tmp_path / 'first', text_file)
    edited_at_the_top(bigram, monkeypatch, max_iters=100)
    args = [arg for arg in tiny_args('bigram', tmp_path, text_file) if not arg.startswith('--max_iters=')]
    start = f"--init_from={tmp_path / 'first' / 'out' / 'ckpt.pt'}"
    summary = bigram.main(*bigram.parse_overrides(args + [start, '--time_budget=2'], bigram.DEFAULTS))
    assert summary['iters'] == summary['config']['lr_decay_iters'] > 100  # settled by the budget


def test_a_metrics_line_cut_short_is_dropped_on_resume(bigram, tmp_path, text_file):
    """A run killed while it appended to metrics.jsonl leaves half a line, an editor a blank one: --resume drops them
    (each was a traceback)."""
    run(bigram, tmp_path, text_file, max_iters=20, lr_decay_iters=30)
    metrics = tmp_path / 'out' / 'metrics.jsonl'
    with open(metrics, 'a') as f:
        f.write('\n{}\n{"step": 30, "train_lo')  # and an editor's blank line, and a line that is no record
    assert run(bigram, tmp_path, text_file, '--resume=true', max_iters=30, lr_decay_iters=30)['iters'] == 30
    assert [json.loads(line)['step'] for line in metrics.read_text().splitlines()] == [0, 10, 20, 30]


def test_out_dir_dot_moves_the_earlier_run_beside_it_and_a_symlink_to_it_is_its_own(bigram, tmp_path, text_file,
                                                                                       monkeypatch, capsys):
    """--out_dir=. moved the earlier run to ./.-<time>, inside the folder it was moved out of; --init_from through a
    symlink to out_dir got past the own-checkpoint check, moved the run aside, then failed."""
    folder = tmp_path / 'run'
    folder.mkdir()
    monkeypatch.chdir(folder)
    run(bigram, tmp_path, text_file, out_dir='.')
    run(bigram, tmp_path, text_file, out_dir='.')
    moved = [line for line in capsys.readouterr().out.splitlines() if 'moved it to' in line]
    assert len(moved) == 1 and moved[0].startswith(f". held an earlier run: moved it to {tmp_path}{os.sep}run-")
    assert [name for name in os.listdir(tmp_path) if name.startswith('run-')] and not list(folder.glob('.-*'))
    os.symlink(folder, tmp_path / 'link')
    with pytest.raises(bigram.UsageError, match="this run's own checkpoint"):
        run(bigram, tmp_path, text_file, out_dir='.', init_from=str(tmp_path / 'link' / 'ckpt.pt'))
    assert (folder / 'ckpt.pt').exists()


def test_the_text_is_recorded_and_a_resume_on_another_text_says_so(bigram, tmp_path, text_file, capsys):
    """summary.json and the checkpoint keep the text's sha256 (eval.json's, for the same file). A resume from another
    folder found another input.txt there and trained on it without a word (the vocabulary was the same)."""
    summary = run(bigram, tmp_path, text_file, max_iters=20, lr_decay_iters=30)
    with open(text_file, 'rb') as f:
        text = f.read()
    assert summary['text_sha256'] == hashlib.sha256(text).hexdigest()
    capsys.readouterr()
    run(bigram, tmp_path, text_file, '--resume=true', max_iters=25, lr_decay_iters=30)
    assert 'is not the text' not in capsys.readouterr().out
    (tmp_path / 'other.txt').write_bytes(text[::-1])
    summary = run(bigram, tmp_path, text_file, '--resume=true', max_iters=30, lr_decay_iters=30,
                  input_path=str(tmp_path / 'other.txt'))
    assert f"note: {tmp_path / 'other.txt'} is not the text this run has trained on (another sha256)" in \
        capsys.readouterr().out
    assert summary['text_sha256'] == hashlib.sha256(text[::-1]).hexdigest()
    bigram.main(*bigram.parse_overrides(tiny_args('bigram', tmp_path, text_file) + ['--eval_only=true'], bigram.DEFAULTS))
    assert json.loads((tmp_path / 'out' / 'eval.json').read_text())['sha256'] == hashlib.sha256(text).hexdigest()


def test_a_copy_of_a_script_uses_the_checkpoints_of_the_original(tmp_path, text_file):
    """cp gpt.py gpt_v2.py to try a change beside the original: the copy samples, scores and starts from the
    original's checkpoints (it refused them: checkpoints were told apart by the script's file name, not its model);
    another script's checkpoint is still refused."""
    gpt = load('gpt')
    run(gpt, tmp_path, text_file)
    copy = tmp_path / 'gpt_v2.py'
    copy.write_text(open(os.path.join(ROOT, 'gpt.py'), encoding='utf-8').read(), encoding='utf-8')
    args = tiny_args('gpt', tmp_path, text_file)
    for extra in (['--sample_only=true'], ['--eval_only=true'], [f"--out_dir={tmp_path / 'v2'}",
                                                                 f"--init_from={tmp_path / 'out' / 'ckpt.pt'}"]):
        result = subprocess.run([sys.executable, str(copy), *args, *extra], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    mlp = subprocess.run([sys.executable, os.path.join(ROOT, 'mlp.py'), '--sample_only=true',
                          f"--init_from={tmp_path / 'out' / 'ckpt.pt'}", f"--out_dir={tmp_path / 'm'}"],
                         capture_output=True, text=True)
    assert mlp.returncode == 2 and 'is not a checkpoint of mlp.py' in mlp.stderr


def test_edits_a_resume_left_out_stay_edits(bigram, tmp_path, text_file, monkeypatch, capsys):
    """A resume that leaves an edit out keeps the checkpoint's record of the top of the script: a later --sample_only
    still takes the edited temperature (the resume had made it the new baseline: it was lost, and undoing the edit
    then read as a change). The command's own settings are no edits, and no (was ...)."""
    run(bigram, tmp_path, text_file, max_iters=20, lr_decay_iters=40)
    edited_at_the_top(bigram, monkeypatch, temperature=0.5, resume=True)
    capsys.readouterr()
    run(bigram, tmp_path, text_file, max_iters=30, lr_decay_iters=40)  # resume=True at the top
    out = capsys.readouterr().out
    assert 'not taken (a resumed run keeps its own settings; --name=value changes one): temperature=0.5\n' in out
    assert '(was False)' not in out
    edited_at_the_top(bigram, monkeypatch, resume=False)
    with open(run(bigram, tmp_path, text_file, '--sample_only=true'), encoding='utf-8') as f:
        assert 'temperature = 0.5' in f.read()


def test_a_checkpoint_with_a_warmup_past_its_decay_still_samples_and_resumes(bigram, tmp_path, text_file):
    """Such schedules are refused for new runs only: a run trained before the check (its warmup past its decay)
    samples, scores and resumes as before."""
    run(bigram, tmp_path, text_file, max_iters=20, lr_decay_iters=30)
    path = tmp_path / 'out' / 'ckpt.pt'
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['config'].update(warmup_iters=50)
    torch.save(checkpoint, path)
    for mode in ('--sample_only=true', '--eval_only=true'):
        run(bigram, tmp_path, text_file, mode)
    assert run(bigram, tmp_path, text_file, '--resume=true', max_iters=30, lr_decay_iters=30)['iters'] == 30
