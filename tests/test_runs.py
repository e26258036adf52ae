"""End-to-end runs of the scripts as a person runs them: the files a run writes, determinism, checkpoints,
exact resume, sampling from a checkpoint, and the refusals that need a checkpoint to exist."""
import difflib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import time
import types

import pytest
import torch

from conftest import TINY, load, run_script, tiny_args, tiny_config

SUMMARY_KEYS = {'script', 'config', 'iters', 'train_loss', 'val_loss', 'val_loss_full', 'train_seconds',
                'tokens_per_second', 'device', 'samples_path', 'params'}
METRICS_KEYS = {'step', 'train_loss', 'val_loss', 'lr', 'elapsed', 'tokens_per_second'}
SAMPLE_MARKER = re.compile(r'\n\n-------- sample (\d+) of (\d+) --------\n')


# ------------------------------------------------------------------------------ helpers
def ok(result):
    """Assert a CompletedProcess succeeded, showing its output when it did not."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert 'Traceback' not in result.stdout + result.stderr
    return result


def refused(result, *needles):
    """Assert exit code 2, one line on stderr holding every needle, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert 'Traceback' not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def read_samples(path):
    """(header lines, [sample texts]) of a sample file."""
    with open(path, encoding='utf-8') as f:
        content = f.read()
    assert content.endswith('\n')
    parts = SAMPLE_MARKER.split(content[:-1])
    header, rest = parts[0], parts[1:]
    samples = [rest[i + 2] for i in range(0, len(rest), 3)]
    numbers = [(int(rest[i]), int(rest[i + 1])) for i in range(0, len(rest), 3)]
    assert numbers == [(i + 1, len(samples)) for i in range(len(samples))]
    return header.split('\n'), samples


def metrics(out_dir):
    with open(os.path.join(out_dir, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


def summary(out_dir):
    with open(os.path.join(out_dir, 'summary.json')) as f:
        return json.load(f)


def checkpoint(out_dir):
    return torch.load(os.path.join(out_dir, 'ckpt.pt'), map_location='cpu', weights_only=True)


def samples_files(out_dir):
    return sorted(name for name in os.listdir(out_dir) if name.startswith('samples_'))


def without_out_dir(path):
    with open(path, encoding='utf-8') as f:
        return [line for line in f if not line.startswith('out_dir = ')]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def check_run_outputs(name, out_dir, settings):
    """The contract of a finished training run: summary.json, samples_<hash>.txt, metrics.jsonl, ckpt.pt."""
    module = load(name)
    for file in ('summary.json', 'metrics.jsonl', 'ckpt.pt'):
        assert os.path.isfile(os.path.join(out_dir, file)), file
    assert not [f for f in os.listdir(out_dir) if f.endswith('.tmp') or f == '.write_test']

    s = summary(out_dir)
    assert SUMMARY_KEYS <= s.keys()
    assert s['script'] == f'{name}.py'
    assert s['iters'] == settings['max_iters']
    assert s['device'] == 'cpu'
    for key, value in settings.items():
        assert s['config'][key] == value, key
    assert set(s['config']) == set(module.DEFAULTS)
    for key in ('train_loss', 'val_loss', 'val_loss_full'):
        assert math.isfinite(s[key]) and 0 < s[key] < 10, key
    assert s['train_seconds'] > 0 and s['tokens_per_second'] > 0

    ckpt = checkpoint(out_dir)
    assert s['params'] == sum(t.numel() for t in ckpt['model'].values()) > 0

    rows = metrics(out_dir)
    config = s['config']
    expected_steps = sorted(set(range(0, config['max_iters'], config['eval_interval'])) | {config['max_iters']})
    assert [r['step'] for r in rows] == expected_steps
    for r in rows:
        assert METRICS_KEYS <= r.keys()
        assert math.isfinite(r['train_loss']) and math.isfinite(r['val_loss'])
        assert r['lr'] == module.learning_rate_at(r['step'], config)
        assert r['elapsed'] > 0 and (r['tokens_per_second'] > 0) == (r['step'] > 0)  # step 0: its estimate only
    assert [r['elapsed'] for r in rows] == sorted(r['elapsed'] for r in rows)
    assert rows[-1]['elapsed'] == s['train_seconds']  # the summary's time is the last record's
    assert (rows[-1]['train_loss'], rows[-1]['val_loss']) == (s['train_loss'], s['val_loss'])
    vocab = len(ckpt['chars'])
    assert rows[0]['val_loss'] == pytest.approx(math.log(vocab), abs=0.05)  # zero-initialised head: uniform
    assert rows[-1]['val_loss'] < rows[0]['val_loss']  # it learned something

    path = s['samples_path']
    assert os.path.dirname(os.path.abspath(path)) == os.path.abspath(out_dir)
    assert re.fullmatch(r'samples_[0-9a-f]{8}\.txt', os.path.basename(path))
    header, samples = read_samples(path)
    assert header[0].startswith(f'# {name}.py samples')
    assert f'torch {torch.__version__}' in header[1] and 'device cpu' in header[1]
    assert header[2].startswith(f"# step {settings['max_iters']}: train loss {s['train_loss']:.4f}, "
                                f"val loss {s['val_loss']:.4f}, val_loss_full {s['val_loss_full']:.4f}")
    for key, value in config.items():
        if key not in ('resume', 'sample_only'):
            assert f'{key} = {value!r}' in header, key
    assert len(samples) == config['num_samples']
    for text in samples:
        assert text.startswith(config['prompt'])
        assert len(text) == len(config['prompt']) + config['max_new_tokens']
        assert set(text) <= set(ckpt['chars'])
    return s


# ------------------------------------------------------------------------------ one gpt run, shared
@pytest.fixture(scope='module')
def gpt_run(tmp_path_factory, shakespeare_text):
    """One tiny gpt.py run (dropout 0.2), reused by the tests below; they only add files to its out_dir."""
    tmp = tmp_path_factory.mktemp('gpt_run')
    text_file = tmp / 'text.txt'
    text_file.write_text(shakespeare_text[:20000], encoding='utf-8')
    args = tiny_args('gpt', tmp, str(text_file))
    result = ok(run_script('gpt', args))
    out_dir = str(tmp / 'out')
    s = summary(out_dir)
    with open(s['samples_path'], 'rb') as f:
        sample_bytes = f.read()
    with open(os.path.join(out_dir, 'ckpt.pt'), 'rb') as f:
        ckpt_digest = hashlib.sha256(f.read()).hexdigest()
    return types.SimpleNamespace(tmp=tmp, text_file=str(text_file), out_dir=out_dir, args=args, result=result,
                                 summary=s, sample_bytes=sample_bytes, ckpt_digest=ckpt_digest,
                                 text=shakespeare_text[:20000])


def test_gpt_run_writes_its_files(gpt_run):
    """A gpt.py run exits 0 and writes summary.json, the sample file, metrics.jsonl and ckpt.pt as promised."""
    settings = dict(TINY['gpt'], device='cpu', num_samples=2, max_new_tokens=40, out_dir=gpt_run.out_dir,
                    input_path=gpt_run.text_file)
    check_run_outputs('gpt', gpt_run.out_dir, settings)
    assert 'wrote ' in gpt_run.result.stdout and 'val_loss_full' in gpt_run.result.stdout


def test_bigram_run_writes_its_files(tmp_path, text_file):
    """The same contract for bigram.py (mlp.py is checked in its resume test)."""
    ok(run_script('bigram', tiny_args('bigram', tmp_path, text_file)))
    settings = dict(TINY['bigram'], device='cpu', num_samples=2, max_new_tokens=40, out_dir=str(tmp_path / 'out'))
    check_run_outputs('bigram', str(tmp_path / 'out'), settings)


def test_same_config_same_bytes(gpt_run):
    """Same config and seed on the same device: the same sample file, byte for byte but for the out_dir line
    (out_dir is part of the config, so of the file name too), the same metrics and the same weights."""
    out2 = str(gpt_run.tmp / 'again')
    ok(run_script('gpt', gpt_run.args + [f'--out_dir={out2}']))
    first, second = gpt_run.summary['samples_path'], summary(out2)['samples_path']
    assert os.path.basename(first) != os.path.basename(second)
    assert without_out_dir(first) == without_out_dir(second)
    diff = [line for line in difflib.unified_diff(open(first).read().splitlines(), open(second).read().splitlines(),
                                                  lineterm='', n=0) if line[:1] in '+-' and line[:3] not in ('+++', '---')]
    assert diff == [f"-out_dir = {gpt_run.out_dir!r}", f"+out_dir = {out2!r}"]
    strip = lambda rows: [{k: r[k] for k in ('step', 'train_loss', 'val_loss', 'lr')} for r in rows]
    assert strip(metrics(out2)) == strip(metrics(gpt_run.out_dir))
    assert_same_weights(checkpoint(out2)['model'], checkpoint(gpt_run.out_dir)['model'])
    assert summary(out2)['val_loss_full'] == gpt_run.summary['val_loss_full']


def test_checkpoint_round_trip(gpt_run):
    """ckpt.pt loads with weights_only=True and holds all a resume needs; its weights rebuild the trained model."""
    module = load('gpt')
    ckpt = checkpoint(gpt_run.out_dir)
    assert {'model', 'optimizer', 'config', 'chars', 'step', 'best_val_loss', 'rng'} <= ckpt.keys()
    assert ckpt['step'] == TINY['gpt']['max_iters']
    assert ckpt['chars'] == ''.join(sorted(set(gpt_run.text)))
    assert ckpt['config'] == gpt_run.summary['config']
    assert ckpt['best_val_loss'] == min(r['val_loss'] for r in metrics(gpt_run.out_dir))
    assert isinstance(ckpt['rng']['batches'], torch.Tensor)  # the batch order; dropout is seeded per step
    assert ckpt['dtype'] == gpt_run.summary['dtype']
    states = ckpt['optimizer']['state']
    assert states and all(int(state['step']) == ckpt['step'] for state in states.values())

    model = module.create_model(ckpt['config'], len(ckpt['chars']))
    model.load_state_dict(ckpt['model'])  # strict: every key, every shape
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, ckpt['model'][name]), name
    data = module.encode(gpt_run.text, ckpt['chars'], 'the text')
    splits = module.split_data(data, module.shortest_split(ckpt['config']))
    window, overlap = module.full_val_windows(ckpt['config'])
    autocast = torch.autocast('cpu', dtype=getattr(torch, ckpt['dtype']), enabled=ckpt['dtype'] != 'float32')
    loss = module.full_loss(model, splits['val'], window, overlap, ckpt['config']['batch_size'], autocast)
    assert loss == pytest.approx(gpt_run.summary['val_loss_full'], rel=1e-5)
    x = splits['val'][None, :16].long()
    model.eval()
    again = module.create_model(ckpt['config'], len(ckpt['chars']))
    again.load_state_dict(ckpt['model'])
    again.eval()
    assert torch.equal(model(x)[0], again(x)[0])
    fresh = module.create_model(ckpt['config'], len(ckpt['chars'])).eval()
    assert not torch.equal(model(x)[0], fresh(x)[0])  # the logits really come from the trained weights


# ------------------------------------------------------------------------------ sample_only
def test_sample_only_reproduces_the_training_samples(gpt_run):
    """--sample_only=true with nothing but the out_dir takes the config from the checkpoint and rewrites the
    training run's sample file, byte for byte, at the same path; the checkpoint is not touched."""
    path = gpt_run.summary['samples_path']
    os.remove(path)
    result = ok(run_script('gpt', [f'--out_dir={gpt_run.out_dir}', '--sample_only=true']))
    with open(path, 'rb') as f:
        assert f.read() == gpt_run.sample_bytes
    assert path in result.stdout
    with open(os.path.join(gpt_run.out_dir, 'ckpt.pt'), 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == gpt_run.ckpt_digest


def test_sample_only_takes_the_model_as_trained(gpt_run, capsys):
    """--sample_only=true after a config file written for training (other n_head, max_iters): the training settings
    are ignored, saying so, and the sample file is the training run's, byte for byte; its header says how the
    model was trained and, separately, what the sampling used."""
    gpt = load('gpt')
    config_file = gpt_run.tmp / 'train_config.py'
    config_file.write_text("n_head = 4\nmax_iters = 3500\n")
    args = [str(config_file), f'--out_dir={gpt_run.out_dir}', '--sample_only=true']
    assert gpt.run_command_line(args) == 0
    assert 'ignored n_head=4 (trained with 2), max_iters=3500 (trained with 30)' in capsys.readouterr().out
    with open(gpt_run.summary['samples_path'], 'rb') as f:
        assert f.read() == gpt_run.sample_bytes
    assert gpt.run_command_line(args + ['--temperature=0.5']) == 0
    header, _ = read_samples(re.search(r'wrote (\S+samples_\w+\.txt)', capsys.readouterr().out).group(1))
    trained, sampled = header[header.index('# trained with:'):header.index('# sampled with:')], \
        header[header.index('# sampled with:'):]
    assert 'max_iters = 30' in trained and 'n_head = 2' in trained and 'temperature = 1.0' in trained
    assert 'temperature = 0.5' in sampled and 'max_iters = 30' not in sampled


def test_sample_files_are_named_by_the_device_used_not_the_setting(gpt_run, capsys):
    """--device=auto samples on this CPU as --device=cpu does: the same samples in the same file, whose header says
    cpu (a GPU run's folder copied to a laptop keeps its GPU samples beside the laptop's); --dtype does not change
    float32 sampling, so it is ignored, saying so, and names no other file."""
    gpt = load('gpt')
    for args in (['--device=auto'], ['--device=cpu'], ['--dtype=bfloat16']):
        assert gpt.run_command_line([f'--out_dir={gpt_run.out_dir}', '--sample_only=true', *args]) == 0
        printed = capsys.readouterr().out
        assert f"wrote {gpt_run.summary['samples_path']}" in printed
        with open(gpt_run.summary['samples_path'], 'rb') as f:
            assert f.read() == gpt_run.sample_bytes
    assert "ignored dtype='bfloat16'" in printed
    header, _ = read_samples(gpt_run.summary['samples_path'])
    assert "device = 'cpu'" in header[header.index('# sampled with:'):]


def test_samples_of_an_earlier_step_stay_beside_the_finished_runs(tmp_path, text_file, monkeypatch):
    """Samples from an interrupted run's checkpoint, then the resumed run's own at the end: the step is part of the
    file's name, so both files stay (the finished run overwrote the earlier samples)."""
    gpt = load('gpt')
    config = tiny_config(gpt, tmp_path, text_file, max_iters=20, eval_interval=10, lr_decay_iters=20)
    killed_after_step_10(gpt, config, monkeypatch)
    early = gpt.main(dict(config, sample_only=True))
    with open(early, 'rb') as f:
        early_bytes = f.read()
    assert b'# step 10: ' in early_bytes
    final = gpt.main(dict(config, resume=True))['samples_path']
    assert final != early and b'# step 20: ' in open(final, 'rb').read()
    with open(early, 'rb') as f:
        assert f.read() == early_bytes


def test_sample_only_from_another_runs_checkpoint(gpt_run, capsys):
    """--sample_only=true --init_from=<a run's ckpt.pt> into another out_dir: init_from names the checkpoint, so it is
    not reported as ignored, and the sample file is that run's, byte for byte."""
    gpt = load('gpt')
    other = gpt_run.tmp / 'other'
    checkpoint = os.path.join(gpt_run.out_dir, 'ckpt.pt')
    assert gpt.run_command_line([f'--out_dir={other}', '--sample_only=true', f'--init_from={checkpoint}']) == 0
    printed = capsys.readouterr().out
    assert f"sampling from {checkpoint}" in printed and 'ignored' not in printed
    with open(other / os.path.basename(gpt_run.summary['samples_path']), 'rb') as f:
        assert f.read() == gpt_run.sample_bytes


def test_greedy_sampling_ignores_the_seed(gpt_run):
    """temperature 0 is greedy: runs with different seeds give the same text, under headers that differ only in
    the seed line (so the same file for the same seed); a changed hyperparameter gives another file name, and
    `diff` shows exactly its lines."""
    def sample(seed):
        result = ok(run_script('gpt', [f'--out_dir={gpt_run.out_dir}', '--sample_only=true', '--temperature=0',
                                       f'--seed={seed}']))
        path = re.search(r'wrote (\S+samples_\w+\.txt)', result.stdout).group(1)
        with open(path, 'rb') as f:
            return path, f.read()

    path1, bytes1 = sample(1)
    path2, bytes2 = sample(2)
    assert path2 != path1 and path1 != gpt_run.summary['samples_path']
    assert bytes1.replace(b'\nseed = 1\n', b'\nseed = 2\n') == bytes2
    header1, texts1 = read_samples(path1)
    header2, texts2 = read_samples(path2)
    assert texts1 == texts2
    assert 'temperature = 0.0' in header1
    diff = [line for line in difflib.unified_diff(header1, header2, lineterm='', n=0)
            if line[:1] in '+-' and line[:3] not in ('+++', '---')]
    assert diff == ['-seed = 1', '+seed = 2']


def test_top_k_larger_than_the_vocabulary(gpt_run):
    """--top_k=1000 (more than the vocabulary) works and, keeping every character, samples what no top_k does."""
    result = ok(run_script('gpt', [f'--out_dir={gpt_run.out_dir}', '--sample_only=true', '--top_k=1000']))
    path = re.search(r'wrote (\S+samples_\w+\.txt)', result.stdout).group(1)
    assert path != gpt_run.summary['samples_path']
    header, texts = read_samples(path)
    _, training_texts = read_samples(gpt_run.summary['samples_path'])
    assert 'top_k = 1000' in header
    assert texts == training_texts


def test_prompt_from_a_file_and_samples_longer_than_block_size(gpt_run):
    """--prompt=FILE:path continues the file's text; max_new_tokens far beyond block_size (16) works."""
    prompt = gpt_run.text[100:130]
    prompt_file = gpt_run.tmp / 'prompt.txt'
    prompt_file.write_text(prompt, encoding='utf-8')
    result = ok(run_script('gpt', [f'--out_dir={gpt_run.out_dir}', '--sample_only=true', f'--prompt=FILE:{prompt_file}',
                                   '--max_new_tokens=150', '--num_samples=1']))
    path = re.search(r'wrote (\S+samples_\w+\.txt)', result.stdout).group(1)
    header, texts = read_samples(path)
    assert f"prompt = 'FILE:{prompt_file}'" in header
    assert len(texts) == 1 and texts[0].startswith(prompt) and len(texts[0]) == len(prompt) + 150
    assert set(texts[0]) <= set(gpt_run.text)


def test_prompt_outside_the_vocabulary_is_refused(gpt_run):
    """A prompt with characters the model never saw: exit 2, naming those characters."""
    files = samples_files(gpt_run.out_dir)
    line = refused(run_script('gpt', [f'--out_dir={gpt_run.out_dir}', '--sample_only=true',
                                      f'--prompt={gpt_run.text[:5]}€\u01c5']), 'vocabulary', "'€'", "'\u01c5'")
    assert repr(gpt_run.text[0]) not in line.split('vocabulary')[-1]
    assert samples_files(gpt_run.out_dir) == files


# ------------------------------------------------------------------------------ resume refusals
def test_resume_with_another_vocabulary_is_refused(gpt_run):
    """Resuming on a text with other characters: exit 2 with a clear message, nothing written."""
    other = gpt_run.tmp / 'other.txt'
    other.write_text(gpt_run.text + 'é' * 50, encoding='utf-8')
    before = sorted(os.listdir(gpt_run.out_dir))
    refused(run_script('gpt', tiny_args('gpt', gpt_run.tmp, str(other), out_dir=gpt_run.out_dir) + ['--resume=true']),
            'vocabulary', str(other))
    assert sorted(os.listdir(gpt_run.out_dir)) == before
    with open(os.path.join(gpt_run.out_dir, 'ckpt.pt'), 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == gpt_run.ckpt_digest


@pytest.mark.parametrize('override', ['--n_layer=3', '--n_embd=32'])
def test_resume_with_another_model_shape_is_refused(gpt_run, override):
    """An override that contradicts the checkpoint's model shape: exit 2 naming the hyperparameter and the
    checkpoint's value (n_embd=32 is valid with the checkpoint's n_head=2: the checkpoint is what it contradicts)."""
    name, value = override[2:].split('=')
    trained = checkpoint(gpt_run.out_dir)['config'][name]
    refused(run_script('gpt', [f'--out_dir={gpt_run.out_dir}', '--resume=true', '--max_iters=40', override]),
            f'{name} = {value}', f'{name} = {trained}', 'checkpoint')


def test_model_shape_override_with_the_trained_value_is_accepted(gpt_run):
    """--n_embd=16 alone, the value the checkpoint was trained with, is accepted: it must be checked against the
    checkpoint's n_head (2), not the script's default (6). Sampling then rewrites the training samples exactly."""
    result = ok(run_script('gpt', [f'--out_dir={gpt_run.out_dir}', '--sample_only=true', '--n_embd=16']))
    assert gpt_run.summary['samples_path'] in result.stdout
    with open(gpt_run.summary['samples_path'], 'rb') as f:
        assert f.read() == gpt_run.sample_bytes


# ------------------------------------------------------------------------------ exact resume
@pytest.mark.parametrize('name, dtype', [('gpt', 'float32'), ('gpt', 'bfloat16'), ('gpt', 'float16'), ('mlp', 'float32')])
def test_resume_is_exact(tmp_path, text_file, name, dtype):
    """N steps, then --resume=true --max_iters=2N, equals one run of 2N steps: the same losses at every logged
    step, the same weights, the same val_loss_full (dropout > 0, so its stream must be right after a resume too),
    in float32, under bfloat16 autocast, and under float16 autocast with its gradient scaler (the path of GPUs
    without bfloat16, run here on the CPU so that every test run runs it). The resume command repeats the
    model-shape settings (n_layer=... etc.) with their trained values: accepted."""
    n = 20
    common = dict(max_iters=n, lr_decay_iters=2 * n, warmup_iters=5, eval_interval=10, eval_iters=2, dtype=dtype)
    split_dir, whole_dir = tmp_path / 'split', tmp_path / 'whole'
    first = tiny_args(name, tmp_path, text_file, **common, out_dir=str(split_dir))
    ok(run_script(name, first))
    assert checkpoint(split_dir)['step'] == n
    resumed = ok(run_script(name, first + ['--resume=true', f'--max_iters={2 * n}']))
    assert 'resum' in resumed.stdout
    whole_args = tiny_args(name, tmp_path, text_file, **dict(common, max_iters=2 * n), out_dir=str(whole_dir))
    ok(run_script(name, whole_args))

    config = checkpoint(whole_dir)['config']
    assert config['dropout'] > 0
    pick = lambda rows: [(r['step'], r['train_loss'], r['val_loss'], r['lr']) for r in rows]
    assert pick(metrics(split_dir)) == pick(metrics(whole_dir))
    assert [r['step'] for r in metrics(split_dir)] == [0, 10, 20, 30, 40]
    a, b = checkpoint(split_dir), checkpoint(whole_dir)
    assert a['step'] == b['step'] == 2 * n
    assert_same_weights(a['model'], b['model'])
    assert a['best_val_loss'] == b['best_val_loss']
    assert a['scaler'] == b['scaler'] and bool(a['scaler']) == (dtype == 'float16')  # the scaler's state went on too
    assert summary(split_dir)['val_loss_full'] == summary(whole_dir)['val_loss_full']
    assert without_out_dir(summary(split_dir)['samples_path']) == without_out_dir(summary(whole_dir)['samples_path'])
    if name == 'mlp':
        settings = dict(TINY['mlp'], **common, device='cpu', num_samples=2, max_new_tokens=40, out_dir=str(whole_dir))
        settings['max_iters'] = 2 * n
        check_run_outputs('mlp', str(whole_dir), settings)


def test_gpu_sized_run_on_a_cpu_says_so_at_once(capsys):
    """gpt.py's defaults on a CPU point to configs/gpt_cpu.py before training starts; CPU-sized runs say nothing."""
    gpt = load('gpt')
    cpu = torch.device('cpu')
    gpt.warn_if_slow(cpu, 5e15)
    assert 'configs/gpt_cpu.py' in capsys.readouterr().out
    gpt.warn_if_slow(cpu, 1e13)
    assert capsys.readouterr().out == ''


def test_resume_carries_time_and_tokens(tmp_path, text_file):
    """After a resume, metrics.jsonl's elapsed goes on from where the first part stopped, tokens count every
    step of both parts, and summary.json's train_seconds covers both."""
    gpt = load('gpt')
    config = tiny_config(gpt, tmp_path, text_file, max_iters=20, lr_decay_iters=40)
    first_seconds = gpt.main(config)['train_seconds']
    resumed = gpt.main(dict(config, resume=True, max_iters=40), ['max_iters'])
    rows = metrics(config['out_dir'])
    tokens_per_step = TINY['gpt']['batch_size'] * TINY['gpt']['block_size']
    assert [r['tokens'] for r in rows] == [r['step'] * tokens_per_step for r in rows]
    elapsed = [r['elapsed'] for r in rows]
    assert elapsed == sorted(elapsed) and elapsed[-1] > first_seconds
    assert resumed['train_seconds'] == elapsed[-1] and resumed['tokens'] == 40 * tokens_per_step


def killed_after_step_10(gpt, config, monkeypatch):
    """Run config (20 steps, an evaluation every 10) and kill it at step 15: its checkpoint is step 10's."""
    plain_step = gpt.train_step

    def dies_at_15(run, step):
        if step == 15:
            raise RuntimeError('killed')
        return plain_step(run, step)
    monkeypatch.setattr(gpt, 'train_step', dies_at_15)
    with pytest.raises(RuntimeError, match='killed'):
        gpt.main(config)
    monkeypatch.setattr(gpt, 'train_step', plain_step)
    assert torch.load(os.path.join(config['out_dir'], 'ckpt.pt'))['step'] == 10


def test_a_resume_from_an_evaluation_checkpoint_counts_that_evaluation_once(tmp_path, text_file, monkeypatch):
    """A checkpoint saved at an evaluation step (the best so far, or the final one) is estimated again on resume: its
    time is counted once, so the resumed run's records equal an uninterrupted run's (on a clock that ticks once per
    reading)."""
    gpt = load('gpt')
    clock = iter(range(10**6))
    monkeypatch.setattr(gpt.time, 'perf_counter', lambda: next(clock))
    config = tiny_config(gpt, tmp_path, text_file, max_iters=20, eval_interval=10, lr_decay_iters=20)
    whole = gpt.main(dict(config, out_dir=str(tmp_path / 'whole')))
    killed_after_step_10(gpt, config, monkeypatch)
    for _ in range(2):  # then from the final checkpoint, training nothing: the time stays
        resumed = gpt.main(dict(config, resume=True))
        assert (resumed['eval_seconds'], resumed['train_seconds']) == (whole['eval_seconds'], whole['train_seconds'])
        assert [r['elapsed'] for r in metrics(config['out_dir'])] == [r['elapsed'] for r in metrics(tmp_path / 'whole')]


def test_an_override_that_changes_nothing_says_so(tmp_path, text_file, capsys):
    """--learning_rate on a resume past lr_decay_iters cannot change anything: one line says so."""
    gpt = load('gpt')
    config = tiny_config(gpt, tmp_path, text_file, max_iters=20, lr_decay_iters=20)
    gpt.main(config)
    capsys.readouterr()
    gpt.main(dict(config, resume=True, max_iters=30, learning_rate=3e-3), ['max_iters', 'learning_rate'])
    notes = [line for line in capsys.readouterr().out.splitlines() if 'changes nothing' in line]
    assert notes == ["note: learning_rate=0.003 changes nothing: steps 20 to 30 have the same learning rate with "
                     "the checkpoint's 0.001 (lr warmup to 5, min_lr from 20)"]
    gpt.main(dict(config, resume=True, max_iters=40, lr_decay_iters=40), ['max_iters', 'lr_decay_iters'])
    assert 'changes nothing' not in capsys.readouterr().out


def test_a_text_without_newlines_gets_a_prompt_it_can_use(tmp_path):
    """The default prompt is a newline; a text without one samples from its vocabulary's first character instead,
    recorded in the config, so the run writes its samples and summary."""
    bigram = load('bigram')
    text = tmp_path / 'one_line.txt'
    text.write_text('the quick brown fox jumps over the lazy dog. ' * 40, encoding='utf-8')
    summary_ = bigram.main(tiny_config(bigram, tmp_path, str(text)))
    assert summary_['config']['prompt'] == ' '
    _, samples = read_samples(summary_['samples_path'])
    assert all(sample.startswith(' ') for sample in samples)


# ------------------------------------------------------------------------------ run folders and the lock
def files(folder):
    return {name: (folder / name).read_bytes() for name in os.listdir(folder) if name != '.lock'}


def test_a_fresh_run_moves_the_earlier_run_aside(tmp_path, text_file, capsys):
    """A fresh run into an out_dir that holds a run moves that run, whole and unchanged, to
    <out_dir>-<time of its newest file> (then -2, ...), saying so in one line; resuming and sampling move nothing."""
    bigram = load('bigram')
    out_dir = tmp_path / 'out'
    config = tiny_config(bigram, tmp_path, text_file)
    bigram.main(config)
    bigram.main(dict(config, resume=True, max_iters=40), ['max_iters'])
    bigram.main(dict(config, sample_only=True, temperature=0.5), ['temperature'])
    assert sorted(os.listdir(tmp_path)) == ['out', 'text.txt']
    first = files(out_dir)
    assert {'ckpt.pt', 'summary.json', 'metrics.jsonl'} <= first.keys() and len(samples_files(out_dir)) == 3
    newest = max(os.path.getmtime(out_dir / name) for name in first)
    stamp = time.strftime('%Y%m%d-%H%M%S', time.localtime(newest))
    capsys.readouterr()

    bigram.main(dict(config, seed=7))
    aside = tmp_path / f'out-{stamp}'
    assert [line for line in capsys.readouterr().out.splitlines() if 'moved' in line] == [
        f"{out_dir} held an earlier run: moved it to {aside}"]
    assert files(aside) == first
    assert summary(str(out_dir))['config']['seed'] == 7 and [r['step'] for r in metrics(str(out_dir))] == [0, 10, 20, 30]

    for name in os.listdir(out_dir):  # the same time stamp again: the next free name
        os.utime(out_dir / name, (newest, newest))
    bigram.main(config)
    assert summary(str(tmp_path / f'out-{stamp}-2'))['config']['seed'] == 7


def test_a_run_is_moved_aside_across_file_systems(tmp_path, text_file, monkeypatch):
    """out_dir a link to (or a mount of) another file system: a rename cannot move the earlier run beside it, so it
    is copied there (it was 'cannot write to out_dir: Invalid cross-device link', and an empty folder left)."""
    bigram = load('bigram')
    config = tiny_config(bigram, tmp_path, text_file)
    bigram.main(config)
    first = files(tmp_path / 'out')

    def across_file_systems(rename):
        def renamed(source, destination):  # what a rename says between two file systems
            if os.path.basename(os.path.dirname(destination)).startswith('out-'):
                raise OSError(errno.EXDEV, 'Invalid cross-device link')
            return rename(source, destination)
        return renamed
    for name in ('rename', 'replace'):
        monkeypatch.setattr(os, name, across_file_systems(getattr(os, name)))
    bigram.main(dict(config, seed=7))
    (aside,) = [folder for folder in tmp_path.iterdir() if folder.name.startswith('out-')]
    assert files(aside) == first and summary(str(tmp_path / 'out'))['config']['seed'] == 7


def test_a_second_run_into_a_locked_out_dir_is_refused(tmp_path, text_file, capsys):
    """While a run holds out_dir's lock, another run there (fresh, resume or sample) refuses with one line and
    touches nothing; the lock goes with the process that held it (closing it stands for a crash), so a run
    after that works."""
    fcntl = pytest.importorskip('fcntl')
    bigram = load('bigram')
    args = tiny_args('bigram', tmp_path, text_file)
    assert bigram.run_command_line(args) == 0
    out_dir = tmp_path / 'out'
    before = files(out_dir)
    holder = open(out_dir / '.lock', 'a')
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: as another process's lock
    try:
        for extra in ([], ['--resume=true', '--max_iters=40'], ['--sample_only=true']):
            capsys.readouterr()
            assert bigram.run_command_line(args + extra) == 2
            assert capsys.readouterr().err == (f"bigram.py: error: out_dir {out_dir} is in use by a run that is still "
                                               f"training, sampling or scoring: wait for it to end, or set another --out_dir\n")
            assert files(out_dir) == before
        assert sorted(os.listdir(tmp_path)) == ['out', 'text.txt']
    finally:
        holder.close()
    assert bigram.run_command_line(args + ['--resume=true', '--max_iters=40']) == 0
