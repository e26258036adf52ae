"""The experimenter's loop: a time budget that settles a step count once and reruns exactly, bits per
character and per byte, and the first sample written to a terminal as it is generated."""
import io
import json
import math
import os
import signal

import pytest
import torch

from conftest import load, tiny_config
from test_runs import read_samples

BUDGET = dict(time_budget=1.5, eval_interval=25, warmup_iters=3)


def budgeted_run(tmp_path, text_file, name='budget', **overrides):
    gpt = load('gpt')
    config = tiny_config(gpt, tmp_path, text_file, **BUDGET, **overrides, out_dir=str(tmp_path / name))
    return gpt, gpt.main(config)


# ------------------------------------------------------------------------------ time budget
def test_budget_settles_the_steps_and_reruns_exactly(tmp_path, text_file, capsys):
    """A budgeted run fixes max_iters = lr_decay_iters once, says how to rerun it without the budget, ends its
    schedule at min_lr; the printed rerun gives the same losses at every evaluation and the same samples."""
    gpt, budgeted = budgeted_run(tmp_path, text_file)
    steps = budgeted['config']['max_iters']
    assert steps > BUDGET['warmup_iters'] and budgeted['config']['lr_decay_iters'] == steps
    assert budgeted['iters'] == steps
    rerun_flags = f"--time_budget=0 --max_iters={steps} --lr_decay_iters={steps}"
    assert rerun_flags in capsys.readouterr().out
    assert gpt.learning_rate_at(steps - 1, budgeted['config']) < gpt.learning_rate_at(steps // 2, budgeted['config'])
    assert gpt.learning_rate_at(steps, budgeted['config']) == budgeted['config']['min_lr']

    config = tiny_config(gpt, tmp_path, text_file, **BUDGET, out_dir=str(tmp_path / 'rerun'))
    config.update(time_budget=0.0, max_iters=steps, lr_decay_iters=steps)
    rerun = gpt.main(config)
    for key in ('train_loss', 'val_loss', 'val_loss_full', 'val_bpc'):
        assert rerun[key] == budgeted[key], key
    with open(tmp_path / 'budget' / 'metrics.jsonl') as a, open(tmp_path / 'rerun' / 'metrics.jsonl') as b:
        losses = [[(r['step'], r['train_loss'], r['val_loss']) for r in map(json.loads, f)] for f in (a, b)]
    assert losses[0] == losses[1] and len(losses[0]) >= 2
    header_a, samples_a = read_samples(budgeted['samples_path'])
    header_b, samples_b = read_samples(rerun['samples_path'])
    assert samples_a == samples_b
    assert [line for line in header_a if line not in header_b] == [f"out_dir = {str(tmp_path / 'budget')!r}",
                                                                    "time_budget = 1.5"]


def test_budget_too_small_for_the_warmup_is_refused(tmp_path, text_file):
    gpt = load('gpt')
    config = tiny_config(gpt, tmp_path, text_file, time_budget=0.01, warmup_iters=10_000)
    with pytest.raises(gpt.UsageError, match=r'a time budget of 0.01 s fits only \d+ steps here .* warmup_iters = 10000'):
        gpt.main(config)


def test_resume_of_a_budgeted_run_keeps_its_step_count(tmp_path, text_file, monkeypatch, capsys):
    """Interrupted at step 10, a budgeted run resumes to the count it settled on, without settling again."""
    gpt = load('gpt')
    original_step, original_settle, settled = gpt.train_step, gpt.settle_budget, []

    def settle_budget(run):
        original_settle(run)
        settled.append(run.config['max_iters'])

    def interrupt_at_10(run, step):
        if step == 10 and settled and not hasattr(run, 'interrupted'):  # in the loop, not while timing steps
            run.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)  # the run's own handler asks the loop to stop after this step
        return original_step(run, step)

    monkeypatch.setattr(gpt, 'settle_budget', settle_budget)
    monkeypatch.setattr(gpt, 'train_step', interrupt_at_10)
    config = tiny_config(gpt, tmp_path, text_file, **BUDGET)
    with pytest.raises(KeyboardInterrupt):
        gpt.main(config)
    checkpoint = torch.load(tmp_path / 'out' / 'ckpt.pt', weights_only=True)
    assert checkpoint['step'] == 11 and checkpoint['config']['max_iters'] == settled[0]
    capsys.readouterr()
    resumed = gpt.main(dict(config, resume=True), ['resume'])
    assert resumed['iters'] == settled[0] and resumed['config']['max_iters'] == settled[0]
    assert len(settled) == 1
    assert 'time budget' not in capsys.readouterr().out


def test_negative_budget_is_refused(script):
    with pytest.raises(script.UsageError, match='time_budget must not be negative, got -1'):
        script.check_config(dict(script.DEFAULTS, time_budget=-1.0))


# ------------------------------------------------------------------------------ bits per character and byte
@pytest.mark.parametrize('text', ['ab ba abba.\n' * 400, 'où est l’été? 東京 🙂\n' * 300], ids=['ascii', 'multibyte'])
def test_bits_per_character_and_per_byte(tmp_path, text, capsys):
    """val_bpc is val_loss_full in bits; val_bpb divides the same bits by the UTF-8 bytes of the characters
    scored (all of the val split but its first): equal for ASCII, smaller with multi-byte characters."""
    path = tmp_path / 'text.txt'
    path.write_text(text, encoding='utf-8')
    bigram = load('bigram')
    result = bigram.main(tiny_config(bigram, tmp_path, str(path), block_size=8))
    val_text = text[int(0.9 * len(text)):]
    bits = result['val_loss_full'] * (len(val_text) - 1) / math.log(2)
    assert result['val_bpc'] == pytest.approx(result['val_loss_full'] / math.log(2), rel=1e-12)
    assert result['val_bpb'] == pytest.approx(bits / len(val_text[1:].encode('utf-8')), rel=1e-12)
    printed = capsys.readouterr().out
    assert f"{result['val_bpc']:.4f} bits per character" in printed
    assert (f"{result['val_bpb']:.4f} per UTF-8 byte" in printed) == (text.isascii() is False)
    header, _ = read_samples(result['samples_path'])
    assert f"({result['val_bpc']:.4f} bits per character)" in header[2]


# ------------------------------------------------------------------------------ watching a sample appear
class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize('name', ['bigram', 'gpt'])
def test_sample_only_writes_the_first_sample_to_a_terminal_as_it_comes(tmp_path, text_file, monkeypatch, name):
    module = load(name)
    config = tiny_config(module, tmp_path, text_file)
    module.main(config)
    terminal = Terminal()
    monkeypatch.setattr('sys.stdout', terminal)
    module.main(dict(config, sample_only=True, prompt='The '), ['sample_only', 'prompt'])
    sample_files = sorted((tmp_path / 'out').glob('samples_*.txt'), key=os.path.getmtime)
    _, samples = read_samples(sample_files[-1])
    assert samples[0] + '\n' in terminal.getvalue()
    assert samples[1] + '\n' not in terminal.getvalue()


def test_piped_sample_only_prints_no_sample(tmp_path, text_file, capsys):
    bigram = load('bigram')
    config = tiny_config(bigram, tmp_path, text_file)
    bigram.main(config)
    capsys.readouterr()
    bigram.main(dict(config, sample_only=True), ['sample_only'])
    _, samples = read_samples(next((tmp_path / 'out').glob('samples_*.txt')))
    assert samples[0] not in capsys.readouterr().out
