"""Large texts: the text read in pieces, encoded through a lookup table into the smallest integer type that holds
the vocabulary, batches and losses the same as with the old int64 encoding, and the memory a load takes."""
import contextlib
import math
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, load, tiny_config

MULTI_BYTE = 'caf\u00e9 na\u00efve \u2014 \u4e2d\u6587 \U0001F600\U0001F680 \u00f1\n'  # 2, 3 and 4 bytes in UTF-8


def old_encode(text, chars):
    """The encoding before large texts: a Python list of int64 ids."""
    index = {c: i for i, c in enumerate(chars)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


@torch.no_grad()
def old_full_loss(model, data, window, overlap, batch_size, autocast):
    """full_loss before large texts: the inputs and targets of every window built at once, as int64."""
    model.eval()
    n = len(data) - 1
    starts = torch.arange(0, n - overlap, window - overlap)
    offsets = starts[:, None] + torch.arange(window)
    inputs = torch.nn.functional.pad(data[:-1], (0, window))[offsets]
    targets = torch.nn.functional.pad(data[1:], (0, window), value=-1)[offsets]
    targets[1:, :overlap] = -1
    total = 0.0
    for x, y in zip(inputs.split(batch_size), targets.split(batch_size)):
        with autocast:
            total += model(x, y)[1].item() * (y != -1).sum().item()
    model.train()
    return total / n


def distinct_text(count):
    """A text of exactly `count` distinct characters: 'a', a newline, then CJK characters (3 bytes in UTF-8, and 4
    from the 20,000th on, past the first plane), each once and every 7th twice."""
    chars = ['a', '\n'] + [chr(0x4E00 + i) if i < 20000 else chr(0x20000 + i) for i in range(count - 2)]
    return ''.join(chars) + ''.join(chars[::7]) + 'a\n'


def read_in_pieces(module, monkeypatch, path, read_bytes):
    monkeypatch.setattr(module, 'READ_BYTES', read_bytes)
    return list(module.read_text(str(path)))


# ---------------------------------------------------------------- reading in pieces
@pytest.mark.parametrize('read_bytes', [1, 2, 3, 5, 4096])
def test_pieces_make_the_text(tmp_path, monkeypatch, read_bytes):
    """Reads that cut 2-, 3- and 4-byte characters in two still give whole characters, the text exactly."""
    gpt = load('gpt')
    text = MULTI_BYTE * 50
    path = tmp_path / 'text.txt'
    path.write_bytes(text.encode('utf-8'))
    pieces = read_in_pieces(gpt, monkeypatch, path, read_bytes)
    assert ''.join(pieces) == text
    assert len(pieces) == -(-len(text.encode('utf-8')) // read_bytes)


@pytest.mark.parametrize('read_bytes', [1, 3, 4, 7])
@pytest.mark.parametrize('bad, offset', [(b'\xe9 au lait', 5), (b'\xe4\xb8', 5), (b'\x80', 5), (b'\xf0\x9f\x98', 5)])
def test_not_utf8_offset_in_the_file(tmp_path, monkeypatch, read_bytes, bad, offset):
    """A byte that is not UTF-8, or a file ending inside a character, is reported at its offset in the file,
    wherever the reads cut it."""
    gpt = load('gpt')
    path = tmp_path / 'bad.txt'
    path.write_bytes('\u00e9t\u00e9'.encode('utf-8') + bad)  # 5 bytes of good text first
    with pytest.raises(gpt.UsageError) as info:
        read_in_pieces(gpt, monkeypatch, path, read_bytes)
    assert f'byte {offset} is {bad[0]:#04x}' in str(info.value)


def test_too_large_for_memory(script, tmp_path, monkeypatch):
    """A text larger than the memory available is refused with its size, before anything is read."""
    path = tmp_path / 'text.txt'
    path.write_bytes(b'abc\n' * 1000)
    monkeypatch.setattr(script, 'available_memory', lambda: 3999)
    with pytest.raises(script.UsageError) as info:
        next(script.read_text(str(path)))
    assert str(path) in str(info.value) and '4,000 bytes' in str(info.value) and '3,999 bytes' in str(info.value)
    monkeypatch.setattr(script, 'available_memory', lambda: 4000)
    assert ''.join(script.read_text(str(path))) == 'abc\n' * 1000


@pytest.mark.skipif(not os.path.exists('/dev/fd'), reason='no /dev/fd here')
def test_pipe_refused(script):
    """A pipe (as from `--input_path=<(command)`) cannot be read twice: a UsageError says so, not 'is empty'."""
    read_end, write_end = os.pipe()
    os.write(write_end, b'abc\n' * 100)
    os.close(write_end)
    try:
        with pytest.raises(script.UsageError, match='not a file'):
            next(script.read_text(f'/dev/fd/{read_end}'))
    finally:
        os.close(read_end)


def test_available_memory():
    """Linux reports the memory available; elsewhere the check is skipped (infinity)."""
    available = load('gpt').available_memory()
    if os.path.exists('/proc/meminfo'):
        assert available > 0
    else:
        assert available == math.inf


# ---------------------------------------------------------------- vocabulary and encoding
@pytest.mark.parametrize('count, dtype', [(2, torch.uint8), (256, torch.uint8), (257, torch.int16),
                                          (1 << 15, torch.int16), ((1 << 15) + 1, torch.int32)])
def test_round_trip_and_dtype(tmp_path, monkeypatch, count, dtype):
    """Up to 256 characters the ids are uint8, up to 32,768 int16, then int32; decode(encode(text)) is the text,
    read in pieces that cut characters in two, and load_data's vocabulary is sorted(set(text)) by code point."""
    gpt = load('gpt')
    text = distinct_text(count) * 5  # long enough for a val split of two characters
    chars = ''.join(sorted(set(text)))
    path = tmp_path / 'text.txt'
    path.write_bytes(text.encode('utf-8'))
    monkeypatch.setattr(gpt, 'READ_BYTES', 1000)
    loaded, splits, _ = gpt.load_data(dict(gpt.DEFAULTS, input_path=str(path), block_size=1), None, torch.device('cpu'))
    ids = gpt.encode(gpt.read_text(str(path)), chars, 'the text', len(text))
    assert loaded == chars and len(chars) == count and ids.dtype == dtype
    assert torch.equal(torch.cat((splits['train'], splits['val'])), ids)
    assert gpt.decode(ids.tolist(), chars) == text
    assert torch.equal(ids.long(), old_encode(text, chars))
    assert torch.equal(gpt.encode(text, chars, 'the text'), ids)  # a str gives the same as its pieces


def test_multi_byte_round_trip(script):
    """Accents, CJK and emoji: ids index the sorted vocabulary, and decode(encode(text)) is the text."""
    text = MULTI_BYTE * 3
    chars = ''.join(sorted(set(text)))
    ids = script.encode(text, chars, 'the text')
    assert ids.dtype == torch.uint8 and script.decode(ids.tolist(), chars) == text
    assert torch.equal(ids.long(), old_encode(text, chars))


def test_unknown_characters_listed_surrogates_too(script):
    """A prompt's characters outside the vocabulary are listed, a lone surrogate (from a command line) among them."""
    with pytest.raises(script.UsageError) as info:
        script.encode('ab\udce9\U0001F600', 'ab', 'the prompt')
    assert repr('\udce9') in str(info.value) and repr('\U0001F600') in str(info.value)


def test_text_changed_between_reads(script):
    """Pieces that do not add up to the length counted on the first read are an error, not garbage ids."""
    with pytest.raises(script.UsageError, match='grew'):
        script.encode(['abc', 'ab'], 'abc', 'the text', 4)
    with pytest.raises(script.UsageError, match='shrank'):
        script.encode(['abc'], 'abc', 'the text', 4)


# ---------------------------------------------------------------- the same batches and losses as before
def test_load_data_dtype_on_device(script, tmp_path):
    """load_data puts uint8 on the device for up to 256 characters and int16 above; the batches are int64."""
    for text, dtype in (('hello world\n' * 100, torch.uint8), (distinct_text(300) * 3, torch.int16)):
        path = tmp_path / 'text.txt'
        path.write_text(text, encoding='utf-8')
        config = dict(script.DEFAULTS, input_path=str(path), block_size=8)
        chars, splits, _ = script.load_data(config, None, torch.device('cpu'))
        assert chars == ''.join(sorted(set(text)))
        assert splits['train'].dtype == splits['val'].dtype == dtype
        assert torch.equal(torch.cat((splits['train'], splits['val'])).long(), old_encode(text, chars))
        x, y = script.get_batch(splits['train'], 4, 8, torch.Generator().manual_seed(0))
        assert x.dtype == y.dtype == torch.long


def test_same_batches_and_losses_as_int64(script, tmp_path, shakespeare_text):
    """On a small text, the batches, the loss estimates and val_loss_full are those of the old int64 data, exactly."""
    name = script.SCRIPT[:-3]
    text = shakespeare_text[:20000] + MULTI_BYTE
    chars = ''.join(sorted(set(text)))
    config = dict(script.DEFAULTS, **TINY[name], device='cpu')
    old, new = old_encode(text, chars), script.encode(text, chars, 'the text')
    assert new.dtype == torch.uint8

    def batches(data, seed):
        generator = torch.Generator().manual_seed(seed)
        return [script.get_batch(data, 8, 16, generator) for _ in range(3)]

    for seed in (0, 1):
        for (x1, y1), (x2, y2) in zip(batches(old, seed), batches(new, seed)):
            assert torch.equal(x1, x2) and torch.equal(y1, y2) and x2.dtype == torch.long
    torch.manual_seed(0)
    model = script.create_model(config, len(chars))
    old_splits, new_splits = script.split_data(old, config['block_size']), script.split_data(new, config['block_size'])
    nothing = contextlib.nullcontext()
    assert script.estimate_loss(model, new_splits, config, nothing) == \
        script.estimate_loss(model, old_splits, config, nothing)
    window, overlap = script.full_val_windows(config)
    for batch_size in (1, 3, config['batch_size']):
        assert script.full_loss(model, new_splits['val'], window, overlap, batch_size, nothing) == \
            old_full_loss(model, old_splits['val'], window, overlap, batch_size, nothing)


# ---------------------------------------------------------------- memory
MEASURE = """
import json, resource, sys, torch
sys.path.insert(0, sys.argv[1])
import gpt
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
chars, splits, _ = gpt.load_data(dict(gpt.DEFAULTS, input_path=sys.argv[2]), None, torch.device('cpu'))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({'extra': (peak - before) * (1 if sys.platform == 'darwin' else 1024), 'vocabulary': len(chars),
                  'characters': sum(map(len, splits.values())), 'dtype': str(splits['train'].dtype)}))
"""


@pytest.mark.skipif(sys.platform == 'win32', reason='ru_maxrss is a Unix measure')
@pytest.mark.parametrize('kind', ['ascii', 'multi-byte'])
def test_large_text_loads_in_bounded_memory(tmp_path, kind):
    """A 40 MB text, built here, loads with at most 1.25 bytes per character above what the process held before
    (the uint8 ids are 1), measured in a fresh process: no int64, code point or whole-str copy of it ever exists."""
    unit = ('To be, or not to be, that is the question:\n' * 200 if kind == 'ascii' else
            'Wie hei\u00dft du? \u6211\u53eb\u00e9l\u00e8ve \U0001F600 -- ' * 200)
    path = tmp_path / 'large.txt'
    with open(path, 'w', encoding='utf-8') as f:
        for _ in range(40_000_000 // len(unit.encode('utf-8'))):
            f.write(unit)
    characters = len(unit) * (40_000_000 // len(unit.encode('utf-8')))
    result = subprocess.run([sys.executable, '-c', MEASURE, ROOT, str(path)], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.splitlines()[-1])  # after the data line load_data prints
    assert measured['characters'] == characters and measured['dtype'] == 'torch.uint8'
    assert measured['extra'] / characters < 1.25, f"{measured['extra'] / characters:.2f} bytes per character"


SCORE_MEASURE = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import bigram
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
bigram.main(*bigram.parse_overrides(['--eval_only=true', '--input_path=' + sys.argv[2], '--out_dir=' + sys.argv[3],
                                     '--batch_size=512'], bigram.DEFAULTS))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * (1 if sys.platform == 'darwin' else 1024))
"""


@pytest.mark.skipif(sys.platform == 'win32', reason='ru_maxrss is a Unix measure')
def test_scoring_a_large_text_holds_a_few_bytes_per_character(tmp_path):
    """eval_only on a 30 MB text, in a fresh process: at most 4 bytes per character above what the process held
    before, plus 100 MB for what torch sets up on first use (encoding the text whole took 18 bytes per character)."""
    bigram = load('bigram')
    unit = 'To be, or not to be, that is the question:\n' * 200
    (tmp_path / 'small.txt').write_text(unit * 5)
    config = tiny_config(bigram, tmp_path, str(tmp_path / 'small.txt'))
    bigram.main(config)
    path = tmp_path / 'large.txt'
    with open(path, 'w') as f:
        for _ in range(30_000_000 // len(unit)):
            f.write(unit)
    characters = len(unit) * (30_000_000 // len(unit))
    result = subprocess.run([sys.executable, '-c', SCORE_MEASURE, ROOT, str(path), config['out_dir']],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    extra = int(result.stdout.splitlines()[-1])
    assert json.loads((tmp_path / 'out' / 'eval.json').read_text())['characters'] == characters - 1
    assert extra < 4 * characters + 100e6, f"{(extra - 100e6) / characters:.1f} bytes per character beyond 100 MB"
