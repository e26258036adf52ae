"""Faults during a run: Ctrl-C, a loss that turns NaN, a checkpoint write that fails."""
import errno
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, load, run_script, tiny_args, tiny_config


def load_ckpt(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def tmp_files(folder):
    return [name for name in os.listdir(folder) if name.endswith('.tmp')]


# ------------------------------------------------------------------------------ SIGINT
def interrupt(args, cwd, tmp_path, started):
    """Start gpt.py (by its path relative to cwd) with args, send SIGINT once started(stdout text) is true,
    and return (exit code, stdout, stderr, seconds from the signal to the exit)."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    script = os.path.relpath(os.path.join(ROOT, 'gpt.py'), cwd)
    with open(tmp_path / 'stdout', 'w') as stdout, open(tmp_path / 'stderr', 'w') as stderr:
        process = subprocess.Popen([sys.executable, script, *args], cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while not started((tmp_path / 'stdout').read_text()):
                assert process.poll() is None, f"exited {process.returncode} before training started"
                assert time.monotonic() < deadline, "training did not start within 60 s"
                time.sleep(0.02)
            process.send_signal(signal.SIGINT)
            signalled = time.monotonic()
            returncode = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    out, err = (tmp_path / 'stdout').read_text(), (tmp_path / 'stderr').read_text()
    assert returncode == 130, f"exit {returncode}\nstdout:\n{out}\nstderr:\n{err}"
    assert 'Traceback' not in out + err, err
    assert len(err.strip().splitlines()) == 1, err
    return out, err, time.monotonic() - signalled


def test_sigint_checkpoints_and_resumes_exactly(tmp_path, text_file):
    """Ctrl-C during training: exit 130, no traceback, ckpt.pt at the step it stopped at, and stderr gives the
    command to continue, quoted for the shell and naming the script as it was started (here from another folder,
    into an out_dir with a space); pasted into a shell it runs to the end, and its final weights equal an
    uninterrupted run's."""
    max_iters = 400  # seconds of training: the interrupt comes a few steps in
    cwd = tmp_path / 'elsewhere'
    cwd.mkdir()
    args = tiny_args('gpt', tmp_path, text_file, max_iters=max_iters, lr_decay_iters=max_iters, eval_interval=150,
                     out_dir='out/my run')
    out_dir = cwd / 'out' / 'my run'
    out, err, _ = interrupt(args, cwd, tmp_path, lambda out: 'step 0:' in out)
    assert 'interrupted' in err and '--resume=true' in err
    command = err.split('continue with: ', 1)[1].strip()
    script = os.path.relpath(os.path.join(ROOT, 'gpt.py'), cwd)
    assert shlex.split(command) == ['python', script, *args, '--resume=true']
    stopped = load_ckpt(out_dir / 'ckpt.pt')['step']
    assert f'at step {stopped};' in err
    assert 0 < stopped < max_iters
    assert not os.path.exists(out_dir / 'summary.json')

    env = dict(os.environ, OMP_NUM_THREADS='1')
    resumed = subprocess.run(shlex.quote(sys.executable) + command[len('python'):], shell=True, cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert 'Traceback' not in resumed.stdout + resumed.stderr
    ckpt = load_ckpt(out_dir / 'ckpt.pt')
    assert ckpt['step'] == max_iters
    with open(out_dir / 'metrics.jsonl') as f:
        assert [json.loads(line)['step'] for line in f] == [0, 150, 300, 400]

    whole = tmp_path / 'whole'
    assert run_script('gpt', args + [f'--out_dir={whole}']).returncode == 0
    reference = load_ckpt(whole / 'ckpt.pt')['model']
    assert reference.keys() == ckpt['model'].keys()
    for name, tensor in reference.items():
        assert torch.equal(tensor, ckpt['model'][name]), name


def test_sigint_during_an_evaluation_stops_at_once(tmp_path, text_file):
    """Ctrl-C in the middle of a long evaluation (20,000 batches a split, tens of seconds) stops within seconds,
    checkpointed at the step being evaluated, with no metrics row for that half-done evaluation."""
    args = tiny_args('gpt', tmp_path, text_file, eval_iters=20000)
    out, err, seconds = interrupt(args, ROOT, tmp_path, lambda out: 'training:' in out)
    assert 'step 0:' not in out and 'at step 0;' in err
    assert seconds < 10, f"{seconds:.1f} s from Ctrl-C to the exit"
    assert load_ckpt(tmp_path / 'out' / 'ckpt.pt')['step'] == 0
    assert (tmp_path / 'out' / 'metrics.jsonl').read_text() == ''


def test_ctrl_c_while_scoring_the_val_split_keeps_every_step(tmp_path, text_file, monkeypatch, capsys):
    """Ctrl-C during the final val_loss_full (minutes on a large text) checkpoints the last step and prints the
    command to continue; continuing scores the same model: the same val_loss_full as an uninterrupted run."""
    gpt = load('gpt')
    args = tiny_args('gpt', tmp_path, text_file, max_iters=20)
    full_loss = gpt.full_loss

    def interrupted(*args, **kwargs):  # Ctrl-C as the scoring starts
        monkeypatch.setattr(gpt, 'full_loss', full_loss)
        os.kill(os.getpid(), signal.SIGINT)
        return full_loss(*args, **kwargs)

    monkeypatch.setattr(gpt, 'full_loss', interrupted)
    assert gpt.run_command_line(args) == 130
    assert 'at step 20; continue with: ' in capsys.readouterr().err
    assert load_ckpt(tmp_path / 'out' / 'ckpt.pt')['step'] == 20
    assert gpt.run_command_line(args + ['--resume=true']) == 0
    resumed = json.loads((tmp_path / 'out' / 'summary.json').read_text())['val_loss_full']
    assert gpt.run_command_line(args + [f"--out_dir={tmp_path / 'whole'}"]) == 0
    assert resumed == json.loads((tmp_path / 'whole' / 'summary.json').read_text())['val_loss_full']


def test_ctrl_c_before_a_resumed_runs_first_estimate(tmp_path, text_file, monkeypatch, capsys):
    """A resumed run stopped in its first estimate keeps its checkpoint as it was (it used to rewrite it with NaN
    losses); and with init_from set at the top of the script the printed command clears it, so it works (it used
    to drop it, and fail: resume and init_from exclude each other)."""
    bigram = load('bigram')
    assert bigram.run_command_line(tiny_args('bigram', tmp_path / 'first', text_file)) == 0
    monkeypatch.setattr(bigram, 'DEFAULTS', dict(bigram.DEFAULTS))  # run_command_line types the top values into it
    monkeypatch.setattr(bigram, 'init_from', str(tmp_path / 'first' / 'out' / 'ckpt.pt'))  # as edited at the top
    args = tiny_args('bigram', tmp_path, text_file, max_iters=20, lr_decay_iters=30)
    assert bigram.run_command_line(args) == 0
    ckpt = tmp_path / 'out' / 'ckpt.pt'
    before = load_ckpt(ckpt)
    estimate_loss = bigram.estimate_loss

    def interrupted(*args, **kwargs):  # Ctrl-C as the first estimate starts
        monkeypatch.setattr(bigram, 'estimate_loss', estimate_loss)
        os.kill(os.getpid(), signal.SIGINT)
        return estimate_loss(*args, **kwargs)

    monkeypatch.setattr(bigram, 'estimate_loss', interrupted)
    capsys.readouterr()
    resume = args + ['--resume=true', '--max_iters=30', '--init_from=']
    monkeypatch.setattr(sys, 'argv', ['bigram.py', *resume])  # what the continue command is made of
    assert bigram.run_command_line(resume) == 130
    after = load_ckpt(ckpt)
    assert after['step'] == 20 and after['losses'] == before['losses'] and math.isfinite(after['losses']['val_loss'])
    command = shlex.split(capsys.readouterr().err.split('continue with: ')[1])
    assert command[-2:] == ['--resume=true', '--init_from=']
    assert bigram.run_command_line(command[2:]) == 0
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['iters'] == 30 and summary['config']['init_from'] == bigram.init_from  # where its weights began


def test_ctrl_c_in_the_middle_of_a_print_still_saves(tmp_path, text_file, monkeypatch, capsys):
    """The Ctrl-C handler prints a line; if the signal came while the run itself was printing, Python refuses the
    nested write with RuntimeError("reentrant call"), which ended the run with a traceback and no checkpoint."""
    bigram = load('bigram')
    log, estimate_loss = bigram.log, bigram.estimate_loss

    def busy_log(message):  # as if stdout were in the middle of a write
        if message.startswith('interrupt:'):
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stdout>'>")
        log(message)

    def interrupted(*args, **kwargs):
        monkeypatch.setattr(bigram, 'estimate_loss', estimate_loss)
        os.kill(os.getpid(), signal.SIGINT)
        return estimate_loss(*args, **kwargs)

    monkeypatch.setattr(bigram, 'log', busy_log)
    monkeypatch.setattr(bigram, 'estimate_loss', interrupted)
    assert bigram.run_command_line(tiny_args('bigram', tmp_path, text_file)) == 130
    assert load_ckpt(tmp_path / 'out' / 'ckpt.pt')['step'] == 0


def test_a_second_ctrl_c_stops_at_once(tmp_path, text_file, monkeypatch, capsys):
    """The first Ctrl-C asks for a checkpoint after this step or evaluation batch; a second one stops at once,
    saving nothing, with one line."""
    bigram = load('bigram')
    estimate_loss = bigram.estimate_loss

    def interrupted_twice(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return estimate_loss(*args, **kwargs)

    monkeypatch.setattr(bigram, 'estimate_loss', interrupted_twice)
    assert bigram.run_command_line(tiny_args('bigram', tmp_path, text_file)) == 130
    assert capsys.readouterr().err == 'bigram.py: interrupted\n'
    assert not (tmp_path / 'out' / 'ckpt.pt').exists()


# ------------------------------------------------------------------------------ NaN
def poison(module, monkeypatch, at_step, report):
    """Wrap module.train_step: at at_step fill the weights with NaN; from then on return a NaN loss
    (report='nan') or a made-up finite one (report='finite', so that only the evaluation can notice)."""
    original = module.train_step

    def train_step(run, step):
        loss = original(run, step)
        if step == at_step:
            with torch.no_grad():
                for p in run.model.parameters():
                    p.fill_(float('nan'))
        if step >= at_step:
            return torch.tensor(float('nan') if report == 'nan' else 1.0)
        return loss

    monkeypatch.setattr(module, 'train_step', train_step)


@pytest.mark.parametrize('report, caught_at', [('nan', 'the loss is nan at step 15'),
                                               ('finite', 'the estimated loss is {')])
def test_nan_stops_training_and_keeps_the_last_good_checkpoint(monkeypatch, tmp_path, text_file, report, caught_at):
    """A NaN loss (seen at the next read-back) or NaN weights behind finite losses (seen at the next evaluation)
    raise TrainingError naming the step; ckpt.pt still holds the finite weights of step 10, nothing else is written."""
    module = load('gpt')
    poison(module, monkeypatch, 15, report)
    with pytest.raises(module.TrainingError) as raised:
        module.main(tiny_config(module, tmp_path, text_file))
    message = str(raised.value)
    assert caught_at in message
    assert ('at step 15' if report == 'nan' else 'at step 20') in message
    out_dir = tmp_path / 'out'
    assert f"{out_dir / 'ckpt.pt'} keeps the weights of step 10" in message
    assert 'a --learning_rate below 0.001' in message and 'grad_clip' not in message  # clipping is on already
    ckpt = load_ckpt(out_dir / 'ckpt.pt')
    assert ckpt['step'] == 10
    assert all(torch.isfinite(t).all() for t in ckpt['model'].values())
    assert math.isfinite(ckpt['best_val_loss'])
    assert not (out_dir / 'summary.json').exists()
    assert not [name for name in os.listdir(out_dir) if name.startswith('samples_')]
    assert not tmp_files(out_dir)


def test_nan_before_any_checkpoint_says_there_is_none(monkeypatch, tmp_path, text_file):
    """A NaN before the first checkpoint: the error says this run wrote none (an earlier run's was moved aside,
    not kept in its place), and with clipping off it suggests turning it on."""
    module = load('gpt')
    out_dir = tmp_path / 'out'
    module.main(tiny_config(module, tmp_path, text_file))  # an earlier run in the same out_dir
    poison(module, monkeypatch, 5, 'nan')
    with pytest.raises(module.TrainingError) as raised:
        module.main(tiny_config(module, tmp_path, text_file, grad_clip=0.0))
    message = str(raised.value)
    assert 'the loss is nan at step 5' in message and 'this run wrote no checkpoint' in message
    assert '--grad_clip=1' in message
    assert not (out_dir / 'ckpt.pt').exists()


def test_nan_on_the_command_line_exits_1(monkeypatch, tmp_path, text_file, capsys):
    """The command-line entry turns TrainingError into exit code 1 and one line on stderr, no traceback."""
    module = load('gpt')
    poison(module, monkeypatch, 15, 'nan')
    assert module.run_command_line(tiny_args('gpt', tmp_path, text_file)) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[-1].startswith('gpt.py: error: the loss is nan at step 15')
    assert 'Traceback' not in captured.out + captured.err


# ------------------------------------------------------------------------------ failed writes
@pytest.fixture
def trained(tmp_path, text_file):
    """A finished tiny gpt run (in this process): its module, config and out_dir."""
    module = load('gpt')
    config = tiny_config(module, tmp_path, text_file)
    module.main(config)
    return module, config, tmp_path / 'out'


def test_failed_checkpoint_write_keeps_the_old_checkpoint(trained, monkeypatch):
    """When the rename of a new checkpoint fails (disk full, ...), the error reaches the caller, the old ckpt.pt
    still loads with its old step, and no .tmp file is left behind."""
    module, config, out_dir = trained
    path = str(out_dir / 'ckpt.pt')
    old_bytes = (out_dir / 'ckpt.pt').read_bytes()
    run = module.Run(dict(config, resume=True), ())

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(module.os, 'replace', no_space)
    run.best_val_loss = 0.5
    with pytest.raises(OSError):
        module.save_checkpoint(run, 999, {'train_loss': 1.0, 'val_loss': 1.0, 'val_loss_full': 1.0})
    monkeypatch.undo()
    assert (out_dir / 'ckpt.pt').read_bytes() == old_bytes
    assert load_ckpt(path)['step'] == config['max_iters']
    assert not tmp_files(out_dir)


@pytest.mark.parametrize('failure', [OSError(errno.ENOSPC, 'No space left on device'), KeyboardInterrupt()],
                         ids=['disk-full', 'ctrl-c'])
def test_write_interrupted_halfway_keeps_the_old_file(trained, failure):
    """A write that fails halfway (or a Ctrl-C during it) leaves the old file whole and removes the temporary file."""
    module, config, out_dir = trained
    path = str(out_dir / 'ckpt.pt')
    old_bytes = (out_dir / 'ckpt.pt').read_bytes()

    def half_then_fail(f):
        f.write(old_bytes[:len(old_bytes) // 2])
        raise failure

    with pytest.raises(type(failure)):
        module.write_atomic(path, half_then_fail)
    assert (out_dir / 'ckpt.pt').read_bytes() == old_bytes
    assert load_ckpt(path)['step'] == config['max_iters']
    assert not tmp_files(out_dir)


def test_out_of_gpu_memory_is_one_line(script, monkeypatch, capsys):
    """Running out of GPU memory ends in one line that suggests a smaller batch_size or block_size, exit 2."""
    def out_of_memory(*args):
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')

    monkeypatch.setattr(script, 'main', out_of_memory)
    assert script.run_command_line([]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert 'out of GPU memory' in err and '--batch_size' in err and '--block_size' in err
