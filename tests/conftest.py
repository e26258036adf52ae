"""Fixtures for the tests: the scripts imported as modules, tiny configs, a text to train on, a runner."""
import importlib
import os
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_TEXT = os.path.join(ROOT, '..', 'shared', 'input.txt')
SCRIPTS = ('bigram', 'mlp', 'gpt')

# hyperparameters small enough that a whole run takes a second or two on one CPU core
TINY = {
    'bigram': dict(batch_size=8, block_size=16, max_iters=30, eval_interval=10, eval_iters=2),
    'mlp': dict(batch_size=8, block_size=4, n_embd=8, n_hidden=32, n_layer=1, max_iters=30, eval_interval=10, eval_iters=2),
    'gpt': dict(batch_size=4, block_size=16, n_layer=2, n_head=2, n_embd=16, max_iters=30, eval_interval=10, eval_iters=2,
                warmup_iters=5, lr_decay_iters=30),
}
TINY_SAMPLING = dict(num_samples=2, max_new_tokens=40, device='cpu')


@pytest.fixture(autouse=True, scope='session')
def one_thread():
    """In-process runs use one thread, as the subprocesses do (OMP_NUM_THREADS=1): tiny models run faster,
    and two threads fighting over cores that other processes hold can make them a hundred times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(name):
    sys.path.insert(0, ROOT)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(ROOT)


@pytest.fixture(params=SCRIPTS)
def script(request):
    """Each script, imported as a module (nothing runs on import)."""
    return load(request.param)


@pytest.fixture(scope='session')
def shakespeare_text():
    """Tiny shakespeare when ../shared/input.txt exists, else a made-up text with a similar vocabulary."""
    if os.path.exists(SHARED_TEXT):
        with open(SHARED_TEXT, encoding='utf-8') as f:
            return f.read()
    lines = [f"LINE {i}: what's in a name? That which we call a rose, by any other name would smell as sweet!\n"
             for i in range(4000)]
    return ''.join(lines)


@pytest.fixture
def text_file(tmp_path, shakespeare_text):
    """A 20,000-character piece of the text in a temporary folder."""
    path = tmp_path / 'text.txt'
    path.write_text(shakespeare_text[:20000], encoding='utf-8')
    return str(path)


def tiny_config(module, tmp_path, text_file, **overrides):
    """The module's defaults with its tiny sizes, a temporary out_dir and the small text."""
    name = module.SCRIPT[:-3]
    config = dict(module.DEFAULTS, **TINY[name], **TINY_SAMPLING, input_path=text_file, out_dir=str(tmp_path / 'out'))
    config.update(overrides)
    return config


def tiny_args(name, tmp_path, text_file, **overrides):
    """The same tiny run as command-line arguments."""
    settings = dict(TINY[name], **TINY_SAMPLING, input_path=text_file, out_dir=str(tmp_path / 'out'))
    settings.update(overrides)
    return [f"--{key}={value}" for key, value in settings.items()]


def run_script(name, args, cwd=None, timeout=120, **kwargs):
    """Run a script as a person would; returns the CompletedProcess (text mode)."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, os.path.join(ROOT, f'{name}.py'), *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture
def copy_shared_text(tmp_path):
    """Copy the real input.txt into tmp_path when it exists (for tests that need the full text)."""
    if not os.path.exists(SHARED_TEXT):
        pytest.skip('no ../shared/input.txt')
    shutil.copy(SHARED_TEXT, tmp_path / 'input.txt')
    return str(tmp_path / 'input.txt')
