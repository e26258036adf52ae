"""The data path: reading and downloading the text, encoding, the train/val split and the batches."""
import hashlib
import io
import os

import pytest
import torch

from conftest import SHARED_TEXT, load


# ---------------------------------------------------------------- the real text, split
def test_real_text_split(script, copy_shared_text):
    """Tiny shakespeare: 65 characters (uint8 ids), 1,003,854 train and 111,540 val, the two in order making the whole."""
    text = ''.join(script.read_text(copy_shared_text))
    assert len(text) == 1115394
    chars = ''.join(sorted(set(text)))
    assert len(chars) == 65
    data = script.encode(script.read_text(copy_shared_text), chars, 'the text', len(text))
    assert data.dtype == torch.uint8 and data.shape == (1115394,)
    splits = script.split_data(data, 257)
    assert set(splits) == {'train', 'val'}
    assert len(splits['train']) == 1003854 and len(splits['val']) == 111540
    assert torch.equal(torch.cat((splits['train'], splits['val'])), data)
    loaded = script.load_data(dict(script.DEFAULTS, input_path=copy_shared_text), None, torch.device('cpu'))
    assert loaded[0] == chars and all(torch.equal(loaded[1][name], splits[name]) for name in splits)


def test_encode_decode_round_trip(script, shakespeare_text):
    """decode(encode(text)) is the text; ids index the sorted vocabulary."""
    text = shakespeare_text[:5000]
    chars = ''.join(sorted(set(text)))
    ids = script.encode(text, chars, 'the text')
    assert script.decode(ids.tolist(), chars) == text
    assert ids.min() == 0 and ids.max() == len(chars) - 1
    assert all(chars[i] == c for i, c in zip(ids[:200].tolist(), text[:200]))


def test_encode_unknown_characters_listed(script):
    """Characters outside the vocabulary are a UsageError that names what was encoded and lists each of them."""
    with pytest.raises(script.UsageError) as info:
        script.encode('abcXYa\u00e9', 'abc', 'the prompt')
    message = str(info.value)
    assert 'the prompt' in message
    for c in ('X', 'Y', '\u00e9'):
        assert repr(c) in message
    assert "'a'" not in message


def test_split_data_too_short(script):
    """A split shorter than the script needs is a UsageError naming the split and the script's need."""
    data = torch.arange(100)  # train 90, val 10
    script.split_data(data, 10)  # val holds exactly one window of 9 + 1
    with pytest.raises(script.UsageError) as info:
        script.split_data(data, 11)
    assert 'val split has 10 characters' in str(info.value) and 'fewer than the 11' in str(info.value)
    assert 'block_size' in str(info.value)
    with pytest.raises(script.UsageError) as info:  # train (900) is short too, but val, 9 times shorter, is named
        script.split_data(torch.arange(1000), 901)
    assert 'val split has 100 characters' in str(info.value)


@pytest.mark.parametrize('name, shortest', [('bigram', 2), ('mlp', 17), ('gpt', 257)])
def test_each_model_states_the_split_it_needs(name, shortest):
    """shortest_split: a window of block_size and the character after it, but the bigram reads one character."""
    module = load(name)
    assert module.shortest_split(dict(module.DEFAULTS, block_size=16 if name == 'mlp' else 256)) == shortest


def test_bigram_trains_on_a_text_shorter_than_its_block_size(tmp_path):
    """A 300-character text (val split of 30) is enough for the bigram with its default block_size of 64:
    the batch windows shrink to fit, the run finishes and scores every val character."""
    bigram = load('bigram')
    text = tmp_path / 'short.txt'
    text.write_text(('the cat sat on the mat. ' * 13)[:300], encoding='utf-8')
    config = dict(bigram.DEFAULTS, input_path=str(text), out_dir=str(tmp_path / 'out'), device='cpu', max_iters=20,
                  eval_interval=10, eval_iters=2, num_samples=1, max_new_tokens=10)
    assert config['block_size'] == 64
    summary = bigram.main(config)
    assert 0 < summary['val_loss_full'] < 5


def test_get_batch_shrinks_windows_to_a_short_split(script):
    """On a split of n characters get_batch gives windows of n - 1 (only the bigram allows such a split)."""
    x, y = script.get_batch(torch.arange(10), 3, 64, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (3, 9) and torch.equal(y, x + 1)


# ---------------------------------------------------------------- batches
def test_get_batch_shapes_and_shift(script):
    """x and y are (B, T), y is x shifted by one against the data, and every window lies inside the data."""
    data = torch.arange(100, 150)  # the value tells the position: position = value - 100
    generator = torch.Generator().manual_seed(0)
    x, y = script.get_batch(data, 32, 7, generator)
    assert x.shape == (32, 7) and y.shape == (32, 7)
    assert x.dtype == torch.long
    starts = x[:, 0] - 100
    assert torch.equal(x, data[starts[:, None] + torch.arange(7)])
    assert torch.equal(y, data[starts[:, None] + torch.arange(1, 8)])
    assert (starts >= 0).all() and (starts + 7 < len(data)).all()


def test_get_batch_reaches_every_start(script):
    """Every start from 0 to len(data) - block_size - 1 (the last whole window) is drawn, nothing beyond."""
    data, block_size = torch.arange(20), 5
    x, y = script.get_batch(data, 2000, block_size, torch.Generator().manual_seed(1))
    starts = set(x[:, 0].tolist())
    assert starts == set(range(len(data) - block_size))  # 0 .. 14, with 14 the last possible
    assert y.max().item() == len(data) - 1  # the last character is a target
    assert torch.equal(y, x + 1)


def test_get_batch_single_window(script):
    """Data of exactly block_size + 1 characters gives that one window every time."""
    data = torch.arange(9)
    x, y = script.get_batch(data, 4, 8, torch.Generator().manual_seed(3))
    assert torch.equal(x, torch.arange(8).expand(4, 8)) and torch.equal(y, torch.arange(1, 9).expand(4, 8))


def test_get_batch_deterministic(script):
    """The same generator seed gives the same batches; another seed gives others."""
    data = torch.arange(1000)

    def batches(seed):
        generator = torch.Generator().manual_seed(seed)
        return [script.get_batch(data, 8, 16, generator) for _ in range(3)]

    first, again, other = batches(5), batches(5), batches(6)
    for (x1, y1), (x2, y2) in zip(first, again):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(first[0][0], first[1][0])  # the generator moves on between calls
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other))


# ---------------------------------------------------------------- read_text
def read_error(module, path):
    with pytest.raises(module.UsageError) as info:
        ''.join(module.read_text(path))
    return str(info.value)


def test_read_text(script, tmp_path):
    """A UTF-8 file is read as text, exactly (no newline translation)."""
    path = tmp_path / 'a.txt'
    path.write_bytes('caf\u00e9\r\nline\n'.encode('utf-8'))
    assert ''.join(script.read_text(str(path))) == 'caf\u00e9\r\nline\n'


def test_read_text_missing(script, tmp_path):
    """A missing file (not the default input.txt) is a UsageError naming it; nothing is downloaded."""
    path = str(tmp_path / 'missing.txt')
    message = read_error(script, path)
    assert path in message and 'No such file' in message
    assert not os.path.exists(path)


def test_read_text_directory(script, tmp_path):
    """A directory is a UsageError, not a traceback."""
    message = read_error(script, str(tmp_path))
    assert str(tmp_path) in message and 'cannot read' in message


def test_read_text_empty(script, tmp_path):
    """An empty file is a UsageError saying so."""
    path = tmp_path / 'empty.txt'
    path.write_bytes(b'')
    message = read_error(script, str(path))
    assert str(path) in message and 'empty' in message


def test_read_text_not_utf8(script, tmp_path):
    """Bytes that are not UTF-8 are a UsageError giving the offset and the byte."""
    path = tmp_path / 'latin1.txt'
    path.write_bytes('caf\u00e9 au lait'.encode('latin-1'))
    message = read_error(script, str(path))
    assert str(path) in message and 'not UTF-8' in message and 'byte 3' in message and '0xe9' in message


# ---------------------------------------------------------------- download_shakespeare
FAKE = b'First Citizen:\nBefore we proceed any further, hear me speak.\n' * 20


class FakeResponse(io.BytesIO):
    """What urlopen returns: a context manager with read(n)."""


def test_download_network_failure(script, tmp_path, monkeypatch):
    """No network: a UsageError that gives the URL and a way out, and no file written."""
    def urlopen(*args, **kwargs):
        raise OSError('Network is unreachable')

    monkeypatch.setattr(script.urllib.request, 'urlopen', urlopen)
    path = tmp_path / 'input.txt'
    with pytest.raises(script.UsageError) as info:
        script.download_shakespeare(str(path))
    assert script.DATA_URL in str(info.value) and 'Network is unreachable' in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('payload', [b'<html>404: Not Found</html>', b'', b'x' * 1115394, b'x' * 1115395])
def test_download_wrong_bytes(script, tmp_path, monkeypatch, payload):
    """A download that is not tiny shakespeare (wrong size or md5) is refused and nothing is written."""
    monkeypatch.setattr(script.urllib.request, 'urlopen', lambda *args, **kwargs: FakeResponse(payload))
    path = tmp_path / 'input.txt'
    with pytest.raises(script.UsageError) as info:
        script.download_shakespeare(str(path))
    assert script.DATA_URL in str(info.value) and 'nothing was written' in str(info.value)
    assert os.listdir(tmp_path) == []


def test_download_good_bytes_written(script, tmp_path, monkeypatch):
    """A download of the right size and md5 is written, byte for byte, with no temporary file left."""
    monkeypatch.setattr(script, 'DATA_BYTES', len(FAKE))
    monkeypatch.setattr(script, 'DATA_MD5', hashlib.md5(FAKE).hexdigest())
    monkeypatch.setattr(script.urllib.request, 'urlopen', lambda *args, **kwargs: FakeResponse(FAKE))
    path = tmp_path / 'input.txt'
    script.download_shakespeare(str(path))
    assert path.read_bytes() == FAKE
    assert os.listdir(tmp_path) == ['input.txt']


def test_download_longer_than_expected_refused(script, tmp_path, monkeypatch):
    """A response that goes on past the expected size is refused even if its first bytes are right."""
    monkeypatch.setattr(script, 'DATA_BYTES', len(FAKE))
    monkeypatch.setattr(script, 'DATA_MD5', hashlib.md5(FAKE).hexdigest())
    monkeypatch.setattr(script.urllib.request, 'urlopen', lambda *args, **kwargs: FakeResponse(FAKE + b'more'))
    with pytest.raises(script.UsageError):
        script.download_shakespeare(str(tmp_path / 'input.txt'))
    assert os.listdir(tmp_path) == []


def test_read_text_downloads_the_default_only(script, tmp_path, monkeypatch):
    """read_text('input.txt') downloads it when missing (then reads it); any other missing path does not."""
    calls = []

    def urlopen(url, *args, **kwargs):
        calls.append(url)
        return FakeResponse(FAKE)

    monkeypatch.setattr(script, 'DATA_BYTES', len(FAKE))
    monkeypatch.setattr(script, 'DATA_MD5', hashlib.md5(FAKE).hexdigest())
    monkeypatch.setattr(script.urllib.request, 'urlopen', urlopen)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(script.UsageError):
        ''.join(script.read_text('other.txt'))
    assert calls == []
    assert ''.join(script.read_text('input.txt')) == FAKE.decode()
    assert calls == [script.DATA_URL]
    assert ''.join(script.read_text('input.txt')) == FAKE.decode()  # present now: not downloaded again
    assert calls == [script.DATA_URL]


def test_data_constants_are_tiny_shakespeare():
    """DATA_BYTES and DATA_MD5 are tiny shakespeare's (so a real download is accepted), checked against the file
    where ../shared/input.txt is here, and against its known size and md5 everywhere (CI may lack the file)."""
    module = load('gpt')
    assert (module.DATA_BYTES, module.DATA_MD5) == (1115394, '6fb458f1232090904fb40fe944165e91')
    if os.path.exists(SHARED_TEXT):
        with open(SHARED_TEXT, 'rb') as f:
            raw = f.read()
        assert len(raw) == module.DATA_BYTES and hashlib.md5(raw).hexdigest() == module.DATA_MD5
