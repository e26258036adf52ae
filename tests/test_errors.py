"""Bad input, run as a person runs it: exit code 2, one line on stderr naming the problem, no traceback,
and nothing left in out_dir (or the out_dir's files unchanged when it held a checkpoint)."""
import ast
import hashlib
import os
import pickle
import random
import shutil

import pytest
import torch

from conftest import load, run_script, tiny_args, tiny_config


class Evil:
    """Unpickling this runs code: it creates the marker file. A weights_only load must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


# ------------------------------------------------------------------------------ case builders
# Each takes a Case and returns the command-line arguments; it may create files under case.tmp.
class Case:
    def __init__(self, tmp, text_file, request):
        self.tmp, self.text_file, self.request = tmp, text_file, request
        self.out_dir = str(tmp / 'out')
        with open(text_file, encoding='utf-8') as f:
            self.text = f.read()

    def args(self, name='gpt', **overrides):
        return tiny_args(name, self.tmp, self.text_file, **overrides)

    def file(self, name, content):
        path = self.tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode('utf-8'))
        return str(path)

    def checkpoint_in_out_dir(self, content):
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, 'ckpt.pt'), 'wb') as f:
            f.write(content)

    def trained_bigram(self):
        """The out_dir of one tiny bigram.py run (shared by the cases that need a real checkpoint)."""
        return self.request.getfixturevalue('bigram_trained')


def with_text(content, **overrides):
    return lambda c: c.args(input_path=c.file('input_text', content), **overrides)


def with_config(content):
    return lambda c: [c.file('config_file.py', content)] + c.args()


def with_checkpoint(content_of):
    def build(c):
        c.checkpoint_in_out_dir(content_of(c))
        return c.args() + ['--resume=true']
    return build


def truncated_checkpoint(c):
    with open(os.path.join(c.trained_bigram(), 'ckpt.pt'), 'rb') as f:
        data = f.read()
    return data[:len(data) // 2]


def pickled_object_checkpoint(c):
    path = c.tmp / 'evil.pt'
    torch.save({'script': 'gpt.py', 'model': Evil(str(c.tmp / 'marker'))}, path)
    return path.read_bytes()


def resumed_bigram(c, *overrides):
    shutil.copytree(c.trained_bigram(), c.out_dir)
    return c.args('bigram') + ['--resume=true', *overrides]


def other_scripts_checkpoint(c):
    shutil.copytree(c.trained_bigram(), c.out_dir)
    return c.args('mlp') + ['--resume=true']


CASES = [  # (id, script, build args, what the error line must contain)
    ('missing-input', 'gpt', lambda c: c.args(input_path=str(c.tmp / 'no_such.txt')), ['cannot read input_path', 'no_such.txt']),
    ('input-is-a-directory', 'gpt', lambda c: c.args(input_path=str(c.tmp)), ['cannot read input_path']),
    ('empty-input', 'gpt', with_text(b''), ['input_text', 'empty']),
    ('non-utf8-input', 'gpt', with_text('caf\u00e9 au lait '.encode('latin-1') * 100), ['not UTF-8']),
    ('text-too-short', 'gpt', with_text('abcdefghij'), ['val split has 1 characters', 'block_size']),  # train too
    ('val-split-too-short', 'gpt', with_text('abcdefghij' * 10), ['val split has 10 characters', 'block_size']),
    ('one-character-vocabulary', 'gpt', with_text('a' * 1000), ['vocabulary of one character']),
    ('unknown-hyperparameter', 'gpt', lambda c: c.args() + ['--n_layers=3'], ["unknown hyperparameter 'n_layers'", 'n_layer']),
    ('wrong-type-int', 'gpt', lambda c: c.args(batch_size='abc'), ['batch_size must be an integer', 'abc']),
    ('option-without-value', 'gpt', lambda c: c.args() + ['--max_iters'], ['--max_iters', '--name=value']),
    ('missing-config-file', 'gpt', lambda c: [str(c.tmp / 'no_config.py')] + c.args(), ['cannot read config file', 'no_config.py']),
    ('config-syntax-error', 'gpt', with_config('batch_size = (4\n'), ['cannot read config file', 'config_file.py', 'never closed']),
    ('config-non-literal', 'gpt', lambda c: [c.file('config_file.py', f"block_size = 8\nbatch_size = open({str(c.tmp / 'marker')!r}, 'w')\n")]
     + c.args(), ['line 2', 'batch_size', 'plain value']),
    ('config-with-code', 'gpt', with_config('import os\nos.system("touch marker")\n'), ['line 1', 'name = value', 'import os']),
    ('batch_size-zero', 'gpt', lambda c: c.args(batch_size=0), ['batch_size must be positive']),
    ('block_size-zero', 'gpt', lambda c: c.args(block_size=0), ['block_size must be positive']),
    ('max_iters-negative', 'gpt', lambda c: c.args(max_iters=-1), ['max_iters must be positive']),
    ('n_layer-zero', 'gpt', lambda c: c.args(n_layer=0), ['n_layer must be positive']),
    ('n_embd-zero', 'gpt', lambda c: c.args(n_embd=0), ['n_embd must be positive']),
    ('n_embd-not-divisible', 'gpt', lambda c: c.args(n_embd=16, n_head=3), ['n_embd (16)', 'n_head (3)']),
    ('dropout-one', 'gpt', lambda c: c.args(dropout=1.0), ['dropout', '[0, 1)']),
    ('dropout-negative', 'gpt', lambda c: c.args(dropout=-0.1), ['dropout', '-0.1']),
    ('temperature-negative', 'gpt', lambda c: c.args(temperature=-1), ['temperature must not be negative']),
    ('top_k-zero', 'gpt', lambda c: c.args(top_k=0), ['top_k must be at least 1']),
    ('device-tpu', 'gpt', lambda c: c.args(device='tpu'), ["device 'tpu'"]),
    ('device-cuda-x', 'gpt', lambda c: c.args(device='cuda:x'), ["device 'cuda:x'"]),
    ('device-meta', 'gpt', lambda c: c.args(device='meta'), ["unknown device 'meta'", 'cuda:N or mps']),  # torch's, not ours
    ('out_dir-unwritable', 'gpt', lambda c: c.args(out_dir=os.path.join(c.file('a_file', 'x'), 'out')), ['cannot write to out_dir']),
    ('resume-without-checkpoint', 'gpt', lambda c: c.args() + ['--resume=true'], ['no checkpoint at', 'ckpt.pt']),
    ('resume-and-sample-only', 'gpt', lambda c: c.args() + ['--resume=true', '--sample_only=true'], ['resume', 'sample_only']),
    ('checkpoint-random-bytes', 'gpt', with_checkpoint(lambda c: random.Random(0).randbytes(5000)), ['ckpt.pt', 'damaged']),
    ('checkpoint-truncated', 'gpt', with_checkpoint(truncated_checkpoint), ['ckpt.pt', 'damaged (corrupt or truncated)']),
    ('checkpoint-pickled-object', 'gpt', with_checkpoint(pickled_object_checkpoint), ['ckpt.pt', 'refused']),
    ('checkpoint-plain-pickle', 'gpt', with_checkpoint(lambda c: pickle.dumps({'step': 1}, protocol=4)), ['damaged']),
    ('checkpoint-of-another-script', 'mlp', other_scripts_checkpoint, ['not a checkpoint of mlp.py']),
    ('bigram-has-no-n_layer', 'bigram', lambda c: c.args('bigram') + ['--n_layer=2'], ["unknown hyperparameter 'n_layer'"]),
    ('mlp-n_hidden-zero', 'mlp', lambda c: c.args('mlp', n_hidden=0), ['n_hidden must be positive']),
    # found before the first step, so nothing is trained or written
    ('prompt-outside-the-vocabulary', 'gpt', lambda c: c.args(prompt='Ol\u00e1\u20ac'), ['the prompt', 'vocabulary', "'\u20ac'"]),
    ('prompt-file-missing', 'gpt', lambda c: c.args(prompt=f"FILE:{c.tmp / 'missing.txt'}"), ['prompt file', 'missing.txt']),
    ('resume-below-the-checkpoint-step', 'bigram', lambda c: resumed_bigram(c, '--max_iters=10'),
     ['max_iters = 10', 'checkpoint is at step 30', '--max_iters=30']),
]


@pytest.fixture(scope='module')
def bigram_trained(tmp_path_factory, shakespeare_text):
    """A real bigram.py checkpoint, trained in this process (cheaper than a subprocess; test_runs covers that)."""
    tmp = tmp_path_factory.mktemp('bigram_trained')
    text_file = tmp / 'text.txt'
    text_file.write_text(shakespeare_text[:20000], encoding='utf-8')
    module = load('bigram')
    module.main(tiny_config(module, tmp, str(text_file)))
    assert os.path.isfile(tmp / 'out' / 'ckpt.pt')
    return str(tmp / 'out')


def snapshot(folder):
    """{name: sha256} of the files in folder ({} when it does not exist)."""
    if not os.path.isdir(folder):
        return {}
    result = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), 'rb') as f:
            result[name] = hashlib.sha256(f.read()).hexdigest()
    return result


@pytest.mark.parametrize('name, build, needles', [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, text_file, request, name, build, needles):
    """Exit code 2, exactly one line on stderr (`<script>: error: ...`) holding what names the problem,
    no traceback anywhere, no file written to out_dir, and no code from a config file or checkpoint run."""
    case = Case(tmp_path, text_file, request)
    args = build(case)
    out_dir = next((a.split('=', 1)[1] for a in reversed(args) if a.startswith('--out_dir=')), case.out_dir)
    before = snapshot(out_dir)
    result = run_script(name, args, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert 'Traceback' not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f'{name}.py: error: ')
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert 'weights_only=False' not in lines[0] and 'likely succeed' not in lines[0]  # torch's hint is never passed on
    assert snapshot(out_dir) == before
    assert not (tmp_path / 'marker').exists()
    assert not os.path.exists(os.path.join(os.path.dirname(__file__), '..', 'marker'))


def test_pickled_checkpoint_would_run_code(tmp_path):
    """The payload of the 'checkpoint-pickled-object' case is live: an unsafe load does create the marker
    (so the marker's absence there means the script refused to unpickle it)."""
    path = tmp_path / 'evil.pt'
    torch.save({'model': Evil(str(tmp_path / 'marker'))}, path)
    torch.load(path, weights_only=False)
    assert (tmp_path / 'marker').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_without_cuda(tmp_path, text_file):
    """--device=cuda on a machine without CUDA: exit 2, saying CUDA is not available and to use --device=cpu."""
    result = run_script('gpt', tiny_args('gpt', tmp_path, text_file, device='cuda'), timeout=60)
    assert result.returncode == 2 and 'Traceback' not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert 'CUDA is not available' in result.stderr and '--device=cpu' in result.stderr
    assert snapshot(str(tmp_path / 'out')) == {}


@pytest.mark.parametrize('name', ['bigram', 'mlp', 'gpt'])
def test_help_anywhere_lists_every_hyperparameter(tmp_path, name):
    """--help anywhere on the line exits 0, trains nothing, and prints the docstring, then every hyperparameter
    with its default and its comment."""
    module = load(name)
    result = run_script(name, [f'--out_dir={tmp_path}/out', '--help', '--max_iters=x'], timeout=60)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    assert result.stdout.startswith(module.__doc__.strip())
    lines = result.stdout.splitlines()
    for key, value in module.DEFAULTS.items():
        line = next(line for line in lines if line.startswith(f'{key} = '))
        assert ast.literal_eval(line.split('=', 1)[1].split('  #')[0].strip()) == value, line
        assert '  # ' in line, line
    assert not (tmp_path / 'out').exists()


def test_unknown_name_in_a_config_file_names_the_file(tmp_path):
    """mlp.py with gpt's config file: the error names the file as well as the hyperparameter."""
    result = run_script('mlp', [os.path.join(os.path.dirname(__file__), '..', 'configs', 'gpt_cpu.py')], timeout=60)
    assert result.returncode == 2
    assert 'gpt_cpu.py: unknown hyperparameter' in result.stderr and len(result.stderr.splitlines()) == 1
