"""torchrun with DistributedDataParallel on the CPU (gloo): same training as one process, one set of files."""
import fcntl
import os
import subprocess
import sys
import textwrap

import torch

from conftest import ROOT, load, run_script, tiny_args

# the global batch is gradient_accumulation_steps * batch_size windows, whatever the number of processes
DDP_SETTINGS = dict(gradient_accumulation_steps=2, dropout=0.0, max_iters=12, eval_interval=6, lr_decay_iters=12)


def torchrun(args, cwd, nproc=2, timeout=150):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_processes_train_like_one(tmp_path, text_file):
    """Two ranks, each with one of the two micro-batches, end with the weights of one process doing both:
    the data order is the same by construction, so only the order of float additions differs."""
    ddp_args = tiny_args('gpt', tmp_path / 'ddp', text_file, **DDP_SETTINGS)
    single_args = tiny_args('gpt', tmp_path / 'single', text_file, **DDP_SETTINGS)
    ddp = torchrun([os.path.join(ROOT, 'gpt.py'), *ddp_args], cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    single = run_script('gpt', single_args, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]

    ddp_out, single_out = tmp_path / 'ddp' / 'out', tmp_path / 'single' / 'out'
    def names(folder):  # the sample file's name hashes the config, out_dir included
        return sorted('samples_*.txt' if p.name.startswith('samples_') else p.name for p in folder.iterdir())
    assert names(ddp_out) == names(single_out) == ['.lock', 'ckpt.pt', 'metrics.jsonl', 'samples_*.txt', 'summary.json']
    assert len((ddp_out / 'metrics.jsonl').read_text().splitlines()) == 3  # steps 0, 6, 12: written once, by rank 0
    ddp_weights = torch.load(ddp_out / 'ckpt.pt', weights_only=True)['model']
    single_weights = torch.load(single_out / 'ckpt.pt', weights_only=True)['model']
    for name, tensor in single_weights.items():
        assert not name.startswith(('module.', '_orig_mod.'))
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)

    # and the checkpoint written under torchrun continues in a plain single-process run
    resumed = run_script('gpt', ddp_args + ['--resume=true', '--max_iters=14'], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(ddp_out / 'ckpt.pt', weights_only=True)['step'] == 14


def test_indivisible_accumulation_is_a_clear_error(tmp_path, text_file):
    args = tiny_args('gpt', tmp_path, text_file, **dict(DDP_SETTINGS, gradient_accumulation_steps=3))
    result = torchrun([os.path.join(ROOT, 'gpt.py'), *args], cwd=tmp_path)
    assert result.returncode != 0
    assert 'gradient_accumulation_steps (3) must be divisible by the number of processes (2)' in result.stderr
    assert 'gpt.py", line' not in result.stderr  # torchrun prints its own summary; gpt.py prints one line


def test_scoring_and_sampling_need_no_divisible_accumulation(tmp_path, text_file):
    """gradient_accumulation_steps splits training steps: scoring or sampling under torchrun never refuses it, and
    rank 0 alone samples or scores (two ranks writing one file collided: 1 run in 3 failed)."""
    args = tiny_args('gpt', tmp_path, text_file, max_iters=4, eval_interval=2)
    assert run_script('gpt', args, cwd=tmp_path).returncode == 0
    for mode in ('--eval_only=true', '--sample_only=true'):
        result = torchrun([os.path.join(ROOT, 'gpt.py'), *args, mode], cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]


def test_a_failing_rank_ends_the_job(tmp_path, text_file):
    """Rank 1 fails mid-run while rank 0 waits for it in a collective: torchrun ends the whole job, no hang."""
    launcher = tmp_path / 'fail_on_rank_1.py'
    launcher.write_text(textwrap.dedent(f"""
        import os, sys
        sys.argv[0] = 'gpt.py'
        sys.path.insert(0, {ROOT!r})
        import gpt
        original = gpt.train_step
        def train_step(run, step):
            if os.environ['RANK'] == '1' and step == 5:
                raise gpt.TrainingError('injected failure on rank 1 at step 5')
            return original(run, step)
        gpt.train_step = train_step
        sys.exit(gpt.run_command_line(sys.argv[1:]))
    """))
    args = tiny_args('gpt', tmp_path, text_file, **dict(DDP_SETTINGS, max_iters=50, lr_decay_iters=50))
    result = torchrun([str(launcher), *args], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert 'injected failure on rank 1 at step 5' in result.stderr


def test_a_failure_on_rank_0_alone_is_one_line(tmp_path, text_file):
    """A refusal only rank 0 meets (out_dir locked by another run: rank 0 alone takes the lock) broke rank 1's next
    collective, which printed a gloo traceback: rank 0 says why, rank 1 says only that the job stopped."""
    args = tiny_args('gpt', tmp_path, text_file, **DDP_SETTINGS)
    out_dir = next(arg.split('=', 1)[1] for arg in args if arg.startswith('--out_dir='))
    os.makedirs(out_dir)
    with open(os.path.join(out_dir, '.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = torchrun([os.path.join(ROOT, 'gpt.py'), *args], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    ours = sorted(line for line in result.stderr.splitlines() if line.startswith('gpt.py [rank'))
    assert ours[0] == (f"gpt.py [rank 0]: error: out_dir {out_dir} is in use by a run that is still training, "
                       f"sampling or scoring: wait for it to end, or set another --out_dir")
    assert ours[1:] in ([], ["gpt.py [rank 1]: stopped: another process of this torchrun job failed"])  # or ended first
    assert 'gpt.py", line' not in result.stderr and 'gloo' not in result.stderr


def test_plain_run_sets_up_no_process_group(tmp_path, text_file):
    """python gpt.py never touches torch.distributed."""
    gpt = load('gpt')
    from conftest import tiny_config
    gpt.main(tiny_config(gpt, tmp_path, text_file, max_iters=2, eval_interval=2))
    assert not torch.distributed.is_initialized()


def test_a_time_budget_times_the_same_steps_on_every_rank(tmp_path, text_file):
    """Each process timed steps until its own clock said enough: with rank 1 slower (here, its clock runs 10x),
    rank 1 stopped first and the job hung, rank 0 waiting in a step's all-reduce (2 runs in 5 hung on their own).
    Rank 0's clock now decides for all."""
    launcher = tmp_path / 'slow_rank_1.py'
    launcher.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.argv[0] = 'gpt.py'
        sys.path.insert(0, {ROOT!r})
        import gpt
        if os.environ['RANK'] == '1':
            clock = time.perf_counter
            gpt.time = type(time)('slow_time')
            gpt.time.__dict__.update(time.__dict__, perf_counter=lambda: 10 * clock())
        sys.exit(gpt.run_command_line(sys.argv[1:]))
    """))
    args = [arg for arg in tiny_args('gpt', tmp_path, text_file, **DDP_SETTINGS, time_budget=4.0)
            if not arg.startswith(('--max_iters=', '--lr_decay_iters='))]  # the budget settles them
    result = torchrun([str(launcher), *args], cwd=tmp_path, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'time budget 4 s:' in result.stdout
