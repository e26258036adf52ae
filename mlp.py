"""
mlp.py: a character-level MLP language model after Bengio et al. (2003), trained on one text file.

The embeddings of the previous block_size characters are concatenated and go through hidden
layers (Linear, LayerNorm, GELU) to a softmax over the vocabulary; sampling slides the window
one character at a time. Training, checkpoints and sampling are those of gpt.py.

    python mlp.py configs/mlp_cpu.py                # 45 s of training on a 2-core CPU (a time budget)
    python mlp.py                                   # the defaults below: a longer run, best on a GPU
    python mlp.py --block_size=8 --n_hidden=256     # any hyperparameter as --name=value
    python mlp.py --resume=true --max_iters=40000   # continue from out/mlp/ckpt.pt
    python mlp.py --sample_only=true --prompt=ROMEO:

The engine after the model is word for word the same in bigram.py and gpt.py.
"""
import ast
import codecs
import contextlib
import copy
import difflib
import hashlib
import inspect
import json
import math
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import time
import urllib.request
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

# ------------------------------------------------------------------------------ hyperparameters
# run
input_path = 'input.txt'   # UTF-8 text to learn; 'input.txt' is downloaded (tiny shakespeare) if missing
out_dir = 'out/mlp'        # checkpoint, sample files, summary.json and metrics.jsonl go here
seed = 1337                # seeds the weights, the batches, dropout and sampling
device = 'auto'            # 'auto' takes cuda, then mps, then cpu; or 'cpu', 'cuda', 'cuda:1', 'mps'
dtype = 'auto'             # 'auto': bfloat16 on GPUs and AMX CPUs, float16 on older GPUs, else float32
compile_model = True       # torch.compile the model on CUDA (falls back to eager if that fails)
resume = False             # continue training from out_dir/ckpt.pt
sample_only = False        # load out_dir/ckpt.pt, write a sample file, train nothing
init_from = ''             # a checkpoint to start a new run from: its weights, this command's text and settings
eval_only = False          # score input_path with out_dir/ckpt.pt (or init_from), write eval.json, train nothing
eval_split = 'all'         # what eval_only scores: 'all' of input_path, or 'val': its last 10%, as val_loss_full
unknown = 'error'          # characters eval_only meets outside the vocabulary: 'error', or 'skip' (left out, counted)
# data
batch_size = 64            # windows per micro-step; each predicts its block_size characters
block_size = 16            # context: the characters the model sees before predicting the next
# model
n_embd = 32                # embedding size of one character
n_hidden = 512             # width of each hidden layer
n_layer = 2                # hidden layers
dropout = 0.1              # after each hidden layer
# optimizer: AdamW, linear warmup, then cosine decay to min_lr
max_iters = 20000          # optimizer steps
time_budget = 0.0          # seconds of training (steps and evaluations); > 0 settles max_iters to fit, once
learning_rate = 2e-3       # peak learning rate, reached after warmup_iters
min_lr = 2e-4              # learning rate from lr_decay_iters on
warmup_iters = 100         # steps of linear warmup from 0
lr_decay_iters = 20000     # its own setting, so a run extended with --max_iters keeps its schedule
weight_decay = 0.1         # on the weight matrices of Linear layers only
beta1 = 0.9                # AdamW momentum
beta2 = 0.99               # AdamW second-moment decay
grad_clip = 1.0            # clip the gradient norm to this; 0 turns clipping off
gradient_accumulation_steps = 1  # micro-steps per optimizer step, summed over all processes
# evaluation and logging
eval_interval = 1000       # estimate train and val loss every this many steps
eval_iters = 100           # batches per estimate
log_interval = 10          # read the loss back from the device (progress bar, NaN check) every this many steps
# sampling
num_samples = 3            # samples written to the sample file
max_new_tokens = 500       # characters per sample
temperature = 1.0          # 0 means greedy: always the likeliest character
top_k = None               # sample only from the k likeliest characters; None means from all
prompt = '\n'              # text the samples continue; 'FILE:path' reads it from a file
# ------------------------------------------------------------------------------
DEFAULTS = {name: value for name, value in globals().items()
            if not name.startswith('_') and isinstance(value, (bool, int, float, str, type(None)))}

# ======================================================================================= mlp.py's own part
MODEL_TYPES = {'n_embd': int, 'n_hidden': int, 'n_layer': int, 'dropout': float}  # of its hyperparameters
MODEL_KEYS = ('block_size', 'n_embd', 'n_hidden', 'n_layer')  # the checkpoint fixes these when resuming
VOCAB_AXES = {'embedding.weight': (0,), 'lm_head.weight': (0,), 'lm_head.bias': (0,)}  # one row per character (+ the blank)

class MLP(nn.Module):
    """Embed each of the previous block_size characters, concatenate, hidden layers, logits of the next.
    Before the text (or a training window) starts there is nothing to see: those slots hold an extra 'blank'
    token. In training most contexts are so cut short, which regularises (README, Notes on the recipe)."""

    def __init__(self, vocab_size, block_size, n_embd, n_hidden, n_layer, dropout):
        super().__init__()
        self.block_size, self.blank = block_size, vocab_size
        self.embedding = nn.Embedding(vocab_size + 1, n_embd)
        layers, width = [], block_size * n_embd
        for _ in range(n_layer):
            layers += [nn.Linear(width, n_hidden), nn.LayerNorm(n_hidden), nn.GELU(), nn.Dropout(dropout)]
            width = n_hidden
        self.hidden = nn.Sequential(*layers)
        self.lm_head = nn.Linear(width, vocab_size)
        nn.init.zeros_(self.lm_head.weight)  # uniform predictions at the start: loss = ln(vocab_size)
        nn.init.zeros_(self.lm_head.bias)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        padded = F.pad(idx, (self.block_size - 1, 0), value=self.blank)  # (B, block_size - 1 + T)
        contexts = padded.unfold(1, self.block_size, 1)  # (B, T, block_size): the characters up to each position
        x = self.embedding(contexts).flatten(2)  # (B, T, block_size * n_embd): the embeddings side by side
        logits = self.lm_head(self.hidden(x))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T), ignore_index=-1)

    @torch.inference_mode()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, on_token=None):
        """The lecture's generate: predict from the last block_size characters, sample, append, repeat."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.block_size:])
            idx = torch.cat((idx, sample_next(logits[:, -1], temperature, top_k, generator)), dim=1)
            if on_token:  # each new character as it comes, (B,) ids
                on_token(idx[:, -1])
        return idx

def check_model_config(config):
    """The MLP's own settings (the engine checks the rest)."""
    for name in ('n_embd', 'n_hidden', 'n_layer'):
        require(config[name] > 0, f"{name} must be positive, got {config[name]}")
    require(0 <= config['dropout'] < 1, f"dropout must be in [0, 1), got {config['dropout']}")

def create_model(config, vocab_size):
    return MLP(vocab_size, config['block_size'], config['n_embd'], config['n_hidden'], config['n_layer'], config['dropout'])

def shortest_split(config):
    """The fewest characters a train or val split may hold: one block_size window and the character after it."""
    return config['block_size'] + 1

def full_val_windows(config):
    """Overlapping windows so that every character is predicted from its full block_size context."""
    return 8 * config['block_size'], config['block_size'] - 1

# ======================================================================================== the engine
# Word for word the same in bigram.py, mlp.py and gpt.py (tests/test_engine_drift.py keeps it so): settings,
# data, evaluation, sampling, files, the run's set-up, training, command line. It uses seven things of the part
# above: MODEL_KEYS, MODEL_TYPES, VOCAB_AXES, check_model_config, create_model, shortest_split, full_val_windows.

# ---- settings: overrides and checks
class UsageError(Exception):
    """A problem with what the person asked for: reported as one line on stderr, exit code 2."""
    exit_code = 2

HYPERPARAMETER_TYPES = {  # of the engine's hyperparameters; the part above gives its model's in MODEL_TYPES
    bool: 'compile_model resume sample_only eval_only',
    int: 'seed batch_size block_size max_iters warmup_iters lr_decay_iters gradient_accumulation_steps eval_interval '
         'eval_iters log_interval num_samples max_new_tokens',
    float: 'time_budget learning_rate min_lr weight_decay beta1 beta2 grad_clip temperature',
    str: 'input_path out_dir device dtype init_from eval_split unknown prompt', type(None): 'top_k'}
TYPES = {name: kind for kind, names in HYPERPARAMETER_TYPES.items() for name in names.split()} | MODEL_TYPES
TYPE_NAMES = {bool: 'true or false', int: 'an integer', float: 'a finite number', str: 'a string',
              type(None): 'an integer or none'}  # top_k: None, or an integer

def parse_overrides(args, defaults):
    """The defaults with config files and --name=value arguments applied in order: (config, the names they set)."""
    config, overridden = dict(defaults), []
    for arg in args:
        if arg.startswith('--'):
            name, has_value, value = arg[2:].partition('=')
            require(has_value, f"{arg}: expected --name=value")
            if TYPES.get(name, type(defaults.get(name))) is not str:  # a Python literal, or true/false/none in any case
                words = {'true': True, 'false': False, 'none': None}
                with contextlib.suppress(ValueError, SyntaxError):  # else left as text, for the type check to refuse
                    value = words[value.lower()] if value.lower() in words else ast.literal_eval(value)
            settings, where = [(name, value)], ''
        else:
            settings, where = read_config_file(arg), f"{arg}: "
        for name, value in settings:
            if name not in defaults:
                close = difflib.get_close_matches(name.lower(), defaults, n=1)
                raise UsageError(f"{where}unknown hyperparameter '{name}'"
                                 + (f" (did you mean {close[0]}?)" if close else ""))
            config[name] = typed(name, value, TYPES.get(name, type(defaults[name])), where)
            overridden.append(name)
    return config, overridden

def typed(name, value, kind, where):
    """value as a hyperparameter of type kind (an integer where a float goes becomes one), or one line saying why."""
    if kind is float and type(value) is int:
        value = float(value)
    fits = type(value) is kind or (kind is type(None) and type(value) is int)
    require(fits and (type(value) is not float or math.isfinite(value)),
            f"{where}{name} must be {TYPE_NAMES[kind]}, got {value!r}")
    return value

def read_config_file(path):
    """The `name = value` lines of a config file, read as data: nothing in it runs."""
    try:
        with open(path, encoding='utf-8-sig') as f:  # -sig: a byte order mark (Windows Notepad) is no setting
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError) as e:  # missing, a directory, not Python, not UTF-8
        raise UsageError(f"cannot read config file {path}: {getattr(e, 'strerror', None) or e}") from None
    settings = []
    for statement in tree.body:
        try:  # AttributeError: not an assignment to a name; ValueError: `a = b = 1`, or not a plain value
            (target,) = statement.targets
            settings.append((target.id, ast.literal_eval(statement.value)))
        except (AttributeError, ValueError, TypeError):
            found = ' '.join(ast.unparse(statement).split())[:60]  # one line, even of an `if` block
            raise UsageError(f"{path} line {statement.lineno}: expected `name = value` with a plain value (a "
                             f"number, string, True, False or None), found `{found}`") from None
    return settings

def require(ok, message):
    if not ok:
        raise UsageError(message)

def check_config(config, overridden=()):
    for name in ('batch_size', 'block_size', 'max_iters', 'learning_rate', 'eval_interval', 'eval_iters',
                 'log_interval', 'num_samples', 'gradient_accumulation_steps'):
        require(config[name] > 0, f"{name} must be positive, got {config[name]}")
    for name in ('min_lr', 'warmup_iters', 'lr_decay_iters', 'weight_decay', 'grad_clip', 'max_new_tokens', 'temperature',
                 'time_budget'):
        require(config[name] >= 0, f"{name} must not be negative, got {config[name]}")
    for name in ('beta1', 'beta2'):
        require(0 <= config[name] < 1, f"{name} must be in [0, 1), got {config[name]}")
    require(config['out_dir'].strip(), "out_dir is empty: give the folder for this run's files")
    require(-2**63 <= config['seed'] < 2**64, f"seed must be between -2**63 and 2**64 - 1, got {config['seed']}")
    require(config['top_k'] is None or config['top_k'] >= 1, f"top_k must be at least 1 (or none), got {config['top_k']}")
    for name, allowed in (('dtype', 'auto float32 bfloat16 float16'), ('eval_split', 'all val'), ('unknown', 'error skip')):
        require(config[name] in allowed.split(), f"{name} must be {' or '.join(allowed.split())}, got '{config[name]}'")
    fresh = not (config['resume'] or config['sample_only'] or config['eval_only'])
    require(not fresh or config['time_budget'] or config['warmup_iters'] <= config['lr_decay_iters'],  # or settled
            f"warmup_iters ({config['warmup_iters']}) is past lr_decay_iters ({config['lr_decay_iters']}): the rate "
            f"would never decay; give a smaller --warmup_iters")
    for name in sorted(set(overridden) & {'max_iters', 'lr_decay_iters'}):
        require(not (fresh and config['time_budget']), f"time_budget = {config['time_budget']:g} settles {name} "
                f"itself: drop {name}, or give --time_budget=0 to set it")
    check_model_config(config)

# ---- data
DATA_URL = 'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt'
DATA_BYTES, DATA_MD5 = 1115394, '6fb458f1232090904fb40fe944165e91'
READ_BYTES = 1 << 18  # the text is read, decoded and encoded 256 KiB at a time: never whole

def read_text(path):
    """The text to learn, in pieces of whole characters, so that a large text never exists whole as a str."""
    if path == 'input.txt' and not os.path.exists(path):
        download_shakespeare(path)
    decoder, start = codecs.getincrementaldecoder('utf-8')(), 0
    try:
        info, available = os.stat(path), available_memory()  # before opening: opening a pipe may wait for a writer
        require(stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode),
                f"input_path {path} is not a file (a pipe?): it is read twice, save it to a file first")
        require(info.st_size <= available, f"input_path {path} is {info.st_size:,} bytes, more than the "
                f"{available:,} bytes of memory available (a run holds a byte a character or more): use a part of it")
        with open(path, 'rb') as f:
            while raw := f.read(READ_BYTES):
                yield decoder.decode(raw)  # a character that raw cuts short is held for the next read
                start += len(raw)
            decoder.decode(b'', final=True)  # the file must not end inside a character
    except OSError as e:
        raise UsageError(f"cannot read input_path {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:  # e.start counts from the bytes the decoder still holds from the read before
        raise UsageError(f"input_path {path} is not UTF-8 text (byte {start - len(decoder.getstate()[0]) + e.start} "
                         f"is {e.object[e.start]:#04x})") from None
    require(start, f"input_path {path} is empty")

def available_memory():
    with contextlib.suppress(OSError, StopIteration, ValueError), open('/proc/meminfo') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith('MemAvailable:'))
    return math.inf

def download_shakespeare(path):
    log(f"{path} is missing: downloading tiny shakespeare from {DATA_URL}")
    try:
        with urllib.request.urlopen(DATA_URL, timeout=60) as response:
            data = response.read(DATA_BYTES + 1)
        md5 = hashlib.md5(data).hexdigest()
        require(len(data) == DATA_BYTES and md5 == DATA_MD5, f"not tiny shakespeare: {len(data)} bytes, md5 {md5}")
    except Exception as e:  # no network, refused, timed out, cut short, or not the file expected
        raise UsageError(f"could not download {DATA_URL} ({e}): nothing was written; save that file as {path} "
                         f"yourself, or point --input_path at a text file of your own") from None
    write_atomic(path, lambda f: f.write(data))

def code_points(text):
    """The code points of text as uint32; a lone surrogate (from a command line) passes, to be reported unknown."""
    return np.frombuffer(text.encode('utf-32-le', errors='surrogatepass'), dtype=np.uint32)

def encode(text, chars, what, length=None):
    """Ids of text (a str, or pieces of `length` characters in all), in the smallest integer type that holds chars."""
    pieces = text if length is not None else (text[i:i + READ_BYTES] for i in range(0, len(text), READ_BYTES))
    length = len(text) if length is None else length  # a str goes in pieces too: its code points take 4 bytes each
    dtype = np.uint8 if len(chars) <= 256 else np.int16 if len(chars) <= 1 << 15 else np.int32
    lookup = np.full(sys.maxunicode + 1, -1, dtype=np.int32)  # -1: not in the vocabulary
    lookup[code_points(chars)] = np.arange(len(chars))
    ids, start = np.empty(length, dtype=dtype), 0
    for piece in pieces:
        piece_ids = np.take(lookup, code_points(piece), mode='clip')  # 'clip', never needed, is take's fast mode
        if (piece_ids < 0).any():
            unknown = sorted(set(piece) - set(chars))
            raise UsageError(f"{what} has characters that are not in the vocabulary: {' '.join(map(repr, unknown))}")
        require(start + len(piece_ids) <= length, f"{what} grew while it was read")
        ids[start:start + len(piece_ids)] = piece_ids
        start += len(piece_ids)
    require(start == length, f"{what} shrank while it was read")
    return torch.from_numpy(ids)

def decode(ids, chars):
    return ''.join(chars[i] for i in ids)

def split_data(data, shortest):
    n = int(0.9 * len(data))  # the train split is 9 times longer: long enough where val is
    require(len(data) - n >= shortest, f"the val split has {len(data) - n} characters, fewer than the {shortest} "
            f"{SCRIPT} needs: use a longer text" + (" or a smaller --block_size" if shortest > 2 else ""))
    return {'train': data[:n], 'val': data[n:]}

def load_data(config, checkpoint, device):
    """The vocabulary (the text's and the checkpoint's characters), the splits on the device (batches are cut there)
    and the text's sha256."""
    path = config['input_path']
    seen, length, digest = np.zeros(sys.maxunicode + 1, dtype=bool), 0, hashlib.sha256()  # code points, count, bytes
    for piece in read_text(path):  # the first read: chars = sorted(set(text)), without the text ever whole
        seen[code_points(piece)] = True
        length += len(piece)
        digest.update(piece.encode())
    if config['resume'] and checkpoint.get('text_sha256', digest.hexdigest()) != digest.hexdigest():
        log(f"note: {path} is not the text this run has trained on (another sha256): from here on it learns this one")
    new, old = set(map(chr, np.flatnonzero(seen))), set(checkpoint['chars'] if checkpoint else '')
    chars = ''.join(sorted(new | old))
    require(len(chars) >= 2, f"input_path {path} has a vocabulary of one character ({chars!r}): nothing to learn")
    require(not config['resume'] or new <= old, f"{path} has {len(new - old)} characters outside the checkpoint's "
            f"vocabulary: resume with the text it was trained on, or start from its weights with --init_from")
    if checkpoint and not config['resume']:
        log(f"vocabulary by character: {len(new & old)} kept, {len(new - old)} added (new rows), "
            f"{len(old - new)} carried from the checkpoint's text")
    splits = split_data(encode(read_text(path), chars, 'the text', length), shortest_split(config))  # the second read
    log(f"data: {path}, {length:,} characters, vocabulary of {len(chars)}, "
        f"train {len(splits['train']):,}, val {len(splits['val']):,}")
    return chars, {name: split.to(device) for name, split in splits.items()}, digest.hexdigest()

def get_batch(data, batch_size, block_size, generator):
    """batch_size random windows of data: inputs x and next characters y, both (B, T) and int64."""
    block_size = min(block_size, len(data) - 1)  # a split shorter than a window, where the model allows it
    starts = torch.randint(len(data) - block_size, (batch_size, 1), generator=generator, device=data.device)
    windows = data[starts + torch.arange(block_size + 1, device=data.device)].long()  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]

# ---- evaluation
@torch.no_grad()
def estimate_loss(model, splits, config, autocast, stop_requested=()):
    """Mean {split}_loss over eval_iters batches of each split: the same batches in every evaluation and run."""
    model.eval()
    losses = {}
    for name, data in splits.items():
        generator = torch.Generator(data.device).manual_seed(config['seed'])
        total = torch.zeros((), device=data.device)
        for _ in range(config['eval_iters']):
            if stop_requested:
                break
            x, y = get_batch(data, config['batch_size'], config['block_size'], generator)
            with autocast:
                total += model(x, y)[1].float()
        losses[f"{name}_loss"] = total.item() / config['eval_iters']
    model.train()
    return losses

@torch.no_grad()
def full_loss(model, data, window, overlap, batch_size, autocast, stop_requested=()):
    """Mean loss over data with every character after the first predicted once, in windows of `window` characters
    every `window - overlap`; in all but the first window, the first `overlap` positions are context only."""
    model.eval()
    n = len(data) - 1  # characters to predict
    starts = torch.arange(0, n - overlap, window - overlap, device=data.device)
    total, device = 0.0, next(model.parameters()).device  # data may stay on the host: one batch at a time moves
    for batch in tqdm(starts.split(batch_size), desc='val_loss_full', unit='batch', delay=3, leave=False, disable=None):
        if stop_requested:
            break
        positions = batch[:, None] + torch.arange(window, device=data.device)  # (B, window)
        beyond = positions >= n  # right padding: no model here looks ahead,
        x = data[positions.clamp(max=n - 1)].long().masked_fill(beyond, 0)
        y = data[positions.clamp(max=n - 1) + 1].long().masked_fill(beyond, -1)  # and padding is never scored
        y[batch > 0, :overlap] = -1
        with autocast:
            total += model(x.to(device), y.to(device))[1].item() * (y != -1).sum().item()
    model.train()
    return math.nan if stop_requested else total / n  # a part scored is not the loss

def loss_and_bits(run, data, stop_requested=()):
    """full_loss of data in nats, and in bits per character and per UTF-8 byte of the characters it scores."""
    window, overlap = full_val_windows(run.config)
    loss = full_loss(run.model, data, window, overlap, run.config['batch_size'], run.autocast, stop_requested)
    byte_counts = torch.tensor([len(c.encode()) for c in run.chars], dtype=torch.float64)
    counts = sum(torch.bincount(part.long().cpu(), minlength=len(run.chars)) for part in data[1:].split(1 << 20))
    bits = loss * (len(data) - 1) / math.log(2)
    return {'val_loss_full': loss, 'val_bpc': loss / math.log(2), 'val_bpb': bits / (counts * byte_counts).sum().item()}

def score_text(run):
    """eval_only: the checkpoint's model scores input_path (or its val split) as val_loss_full is scored: eval.json."""
    config = run.config
    text = ''.join(read_text(config['input_path']))
    checksum = hashlib.sha256(text.encode()).hexdigest()
    if config['eval_split'] == 'val':
        text = split_data(text, 0)['val']
    unknown = ''.join(sorted(set(text) - set(run.chars)))
    require(not unknown or config['unknown'] == 'skip', f"{config['input_path']} has characters that are not in the "
            f"checkpoint's vocabulary: {' '.join(map(repr, unknown))} (--unknown=skip scores the rest without them)")
    scored = text.translate(dict.fromkeys(map(ord, unknown))) if unknown else text  # the model reads on past them
    minimum = full_val_windows(config)[1] + 2
    require(len(scored) >= minimum, f"{config['input_path']} has too few characters to score ({len(scored):,}; "
            f"{SCRIPT} needs {minimum})")
    data = encode(scored, run.chars, 'the text')  # on the host: only a batch at a time goes to the device
    loss, bpc, bpb = loss_and_bits(run, data).values()
    figures = {'script': SCRIPT, 'checkpoint': run.source, 'step': run.checkpoint['step'], 'input_path': config['input_path'],
               'sha256': checksum, 'eval_split': config['eval_split'], 'loss': loss, 'bpc': bpc, 'bpb': bpb,
               'perplexity': math.exp(loss), 'characters': len(data) - 1, 'unknown': len(text) - len(scored),
               'unknown_chars': unknown, 'device': str(run.device), 'dtype': str(run.dtype)[6:]}
    path = os.path.join(config['out_dir'], 'eval.json')
    write_atomic(path, lambda f: f.write(json.dumps(figures, indent=2).encode()))
    log(f"{config['input_path']}: {loss:.4f} nats per character, {bpc:.4f} bits per character, {bpb:.4f} bits per "
        f"byte, perplexity {math.exp(loss):.3f}, {len(data) - 1:,} characters scored" + (f", {figures['unknown']:,} "
        f"outside the vocabulary left out" if unknown else "") + f"; wrote {path}")
    return figures

# ---- sampling
def sample_next(logits, temperature, top_k, generator):
    """The next character ids (B, 1) from the last position's logits (B, vocab); temperature 0 is greedy."""
    if temperature < torch.finfo(torch.float32).tiny:  # 0, or 0 once in float32 (1e-300)
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float()
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature  # <= 0: a tiny temperature cannot overflow
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
        logits = logits.masked_fill(logits < kth_best, -float('inf'))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)

SAMPLING_KEYS = ('seed', 'device', 'num_samples', 'max_new_tokens', 'temperature', 'top_k', 'prompt')  # in float32
SCORING_KEYS = ('device', 'dtype', 'batch_size', 'input_path', 'eval_split', 'unknown')
COMMAND_KEYS = ('resume', 'sample_only', 'eval_only', 'eval_split', 'unknown', 'out_dir')  # never the checkpoint's

def prompt_ids(config, chars):
    """The prompt (or the text of the file that FILE:path names) as character ids, checked before any training."""
    if config['prompt'] == '\n' and '\n' not in chars:
        config['prompt'] = chars[0]
        log(f"the text has no newline: the samples continue prompt = {chars[0]!r} instead")
    text = config['prompt']
    if text.startswith('FILE:'):
        try:
            with open(text[5:], encoding='utf-8') as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read the prompt file {text[5:]}: {getattr(e, 'strerror', None) or e} "
                             f"(--prompt=... gives another)") from None
    require(text, "the prompt is empty: give at least one character (the default is a newline)")
    return encode(text, chars, 'the prompt')

def write_samples(run):
    """num_samples continuations of the prompt, under a header of the settings, in samples_<their hash>.txt."""
    config, checkpoint = run.config, run.checkpoint  # the checkpoint loaded, or the last saved
    step, losses, prompt = checkpoint['step'], checkpoint['losses'], decode(run.prompt.tolist(), run.chars)
    generator = torch.Generator(run.device).manual_seed(config['seed'])
    watch = config['sample_only'] and sys.stdout.isatty()  # a person sees the first sample being written
    if watch:
        print(prompt, end='', flush=True)
    run.model.eval()
    ids = run.model.generate(run.prompt.expand(config['num_samples'], -1), config['max_new_tokens'],
                             config['temperature'], config['top_k'], generator,
                             on_token=lambda new: print(run.chars[new[0]], end='', flush=True) if watch else None)
    if watch:
        print()
    settings = {name: value for name, value in checkpoint['config'].items() if name not in ('resume', 'sample_only')}
    sampling = {name: config[name] for name in SAMPLING_KEYS} | {'device': str(run.device)}  # as used, not 'auto'
    file_text = [prompt] if config['prompt'].startswith('FILE:') else []  # the file may change
    digest = hashlib.sha1(json.dumps([settings, sampling, step] + file_text, sort_keys=True).encode()).hexdigest()[:8]
    lines = [f"# {SCRIPT} samples: diff two sample files to see what changed between runs",
             f"# torch {torch.__version__}, device {run.device}, trained in {checkpoint.get('dtype', '?')}, "
             f"sampled in float32, {run.params:,} parameters",
             f"# step {step}: train loss {losses['train_loss']:.4f}, val loss {losses['val_loss']:.4f}, val_loss_full "
             f"{losses['val_loss_full']:.4f} ({losses['val_loss_full'] / math.log(2):.4f} bits per character)"]
    for stage, values in (('trained', settings), ('sampled', sampling)):
        lines += [f"# {stage} with:"] + [f"{name} = {value!r}" for name, value in values.items()]
    lines += [f"\n-------- sample {i + 1} of {len(ids)} --------\n{decode(row.tolist(), run.chars)}"
              for i, row in enumerate(ids)]
    path = os.path.join(config['out_dir'], f"samples_{digest}.txt")
    write_atomic(path, lambda f: f.write(('\n'.join(lines) + '\n').encode()))
    log(f"wrote {path}")
    return path

# ---- files
SCRIPT = os.path.basename(__file__)

def log(message):
    if os.environ.get('RANK', '0') == '0':  # rank 0 only: the other processes of a torchrun job stay quiet
        try:
            tqdm.write(message)  # above any progress bar
            sys.stdout.flush()  # now: a reader that went away (`| head`) is found here
        except BrokenPipeError:  # the run goes on, printing nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

def write_atomic(path, write):
    """write(f) into a temporary file beside path, then rename it over path: readers see the old file or the new."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, (OSError, RuntimeError)):  # a full disk: torch.save's zip writer says RuntimeError
            raise OSError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None
        raise

def claim_out_dir(config):
    """Lock out_dir (the OS drops the lock when the process ends: a crash never leaves it held). A fresh run first
    moves the run it finds there, whole, to <out_dir>-<time of its newest file>, so that nothing is overwritten."""
    out_dir = os.path.normpath(config['out_dir'])
    try:
        os.makedirs(out_dir, exist_ok=True)
        lock = open(os.path.join(out_dir, '.lock'), 'a')
        with contextlib.suppress(ImportError):  # Windows has no fcntl: runs there go unlocked
            import fcntl
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        names = [name for name in os.listdir(out_dir)
                 if name in ('ckpt.pt', 'summary.json', 'metrics.jsonl', 'eval.json') or name.startswith('samples_')]
        if names and not (config['resume'] or config['sample_only'] or config['eval_only']):
            newest = max(os.path.getmtime(os.path.join(out_dir, name)) for name in names)
            base = f"{os.path.abspath(out_dir)}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(newest))}"
            aside = next(name for name in [base] + [f"{base}-{n}" for n in range(2, 1000)] if not os.path.exists(name))
            os.mkdir(aside)
            for name in names:
                shutil.move(os.path.join(out_dir, name), os.path.join(aside, name))  # copied across file systems
            log(f"{out_dir} held an earlier run: moved it to {aside}")
    except BlockingIOError:
        raise UsageError(f"out_dir {out_dir} is in use by a run that is still training, sampling or scoring: "
                         f"wait for it to end, or set another --out_dir") from None
    except OSError as e:
        raise UsageError(f"cannot write to out_dir {out_dir}: {e.strerror}") from None
    return lock

def save_checkpoint(run, step, losses):
    """Everything needed to continue or to sample, as tensors and plain values so weights_only loading works."""
    checkpoint = {'script': SCRIPT, 'model': run.model.state_dict(), 'optimizer': run.optimizer.state_dict(),
                  'scaler': run.scaler.state_dict(), 'config': run.config, 'chars': run.chars, 'step': step,
                  'best_val_loss': run.best_val_loss, 'losses': losses, 'dtype': str(run.dtype)[6:],
                  'tokens': run.tokens, 'step_seconds': run.step_seconds, 'eval_seconds': run.eval_seconds,
                  'rng': {'batches': run.generator.get_state()},  # dropout needs no state: train_step seeds it per step
                  'defaults': run.defaults, 'text_sha256': run.text_sha256}  # what a later edit or text changes
    write_atomic(run.ckpt_path, lambda f: torch.save(checkpoint, f))
    run.checkpoint, run.saved_step = checkpoint, step

def inode(path):
    """Which file path is now (write_atomic's rename gives it a new one), or None."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_ino
    return None

def load_checkpoint(path):
    """A checkpoint of this script, loaded on the CPU with weights_only=True: tensors and plain values, never code."""
    require(os.path.isfile(path), f"no checkpoint at {path}: check --out_dir (or --init_from), or train first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # torch's notes on what it finds: the line below says what it is
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # a truncated zip, random bytes, a pickled object: whatever it is, it is not loaded
        if 'Unsupported global' in str(e):
            raise UsageError(f"{path} holds pickled Python objects, which could run code if loaded: refused") from None
        raise UsageError(f"{path} is damaged (corrupt or truncated): it cannot be loaded; train again") from None
    needed = {'script', 'model', 'optimizer', 'scaler', 'config', 'chars', 'step', 'losses', 'rng'}
    ours = isinstance(checkpoint, dict) and needed <= checkpoint.keys() and (  # this script's, or a copy's (its model)
        checkpoint['script'] == SCRIPT or set(VOCAB_AXES) <= set(checkpoint['model'] or ()))
    require(ours, f"{path} is not a checkpoint of {SCRIPT}")
    return checkpoint

def start_metrics(path, start_step):
    """metrics.jsonl keeps the evaluations before start_step; a resumed run logs the rest again."""
    kept = []
    with contextlib.suppress(FileNotFoundError), open(path) as f:  # none yet in a fresh run's out_dir
        kept = [line for line in f  # whole lines as written: a line cut short by a kill, or edited, is dropped
                if (written := re.fullmatch(r'\{"step": (\d+), .*\}\n', line)) and int(written[1]) < start_step]
    write_atomic(path, lambda f: f.write(''.join(kept).encode()))

# ---- the run: its config, device, data, model and optimizer
class Run:
    """What one process of a run holds. Three handles on the model: `model`, the plain module (saved, scored exactly,
    sampled); `fast_model`, compiled on CUDA (estimates, training); `train_model`, in DDP (training steps only)."""

    def __init__(self, config, overridden):
        self.distributed = 'RANK' in os.environ  # set by torchrun
        self.rank, self.world_size = int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1))
        self.ckpt_path = os.path.join(config['out_dir'], 'ckpt.pt')
        self.metrics_path = os.path.join(config['out_dir'], 'metrics.jsonl')
        self.config = config = self.settle_config(config, overridden)
        self.device = pick_device(config['device'], int(os.environ['LOCAL_RANK']) if self.distributed else None)
        self.dtype = pick_dtype('float32' if config['sample_only'] else config['dtype'], self.device)
        self.autocast = (torch.autocast(self.device.type, dtype=self.dtype) if self.dtype != torch.float32
                         else contextlib.nullcontext())  # torch 2.4 has no autocast on MPS, even a disabled one
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if self.distributed:
            dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')
        trains = not (config['sample_only'] or config['eval_only'])
        self.chars, self.splits, self.text_sha256 = (load_data(config, self.checkpoint, self.device) if trains
                                                     else (self.checkpoint['chars'], None, None))
        if not config['eval_only']:  # scoring needs no prompt
            self.prompt = prompt_ids(config, self.chars).long().to(self.device)
        self.build_model()
        self.lock = claim_out_dir(config) if self.rank == 0 else None  # last: every check above has passed
        if self.checkpoint:  # a run there that ended since it was read replaced it: these are old weights
            require(inode(self.source) == self.checkpoint_inode,
                    f"{self.source} was replaced while this command started (a run there ended): run it again")

    def settle_config(self, config, overridden):
        """The config to run with, checked; sets the checkpoint it starts from: out_dir's, init_from's, or None."""
        self.source = config['init_from'] or self.ckpt_path
        doing = {'resume': 'resuming', 'sample_only': 'sampling', 'eval_only': 'scoring', 'init_from': 'starting'}
        modes = [name for name in doing if config[name]]
        if len(modes) > 1 and (modes[0] == 'resume' or modes[1] != 'init_from'):  # init_from may name what to load
            raise UsageError(f"{modes[0]} and {modes[1]} exclude each other: pick one")
        own = os.path.realpath(self.source) == os.path.realpath(self.ckpt_path)  # a symlink to out_dir too
        if modes == ['init_from'] and own:
            raise UsageError(f"init_from is {self.ckpt_path}, this run's own checkpoint: give it another --out_dir")
        require(modes[1:] != ['init_from'] or own or not os.path.exists(self.ckpt_path),  # or it passes for that run's
                f"out_dir {config['out_dir']} holds another run: give its samples or scores an --out_dir of their own "
                f"(or --init_from= to use that run's checkpoint)")
        misplaced = [name for name in ('eval_split', 'unknown')  # a config file copying the defaults is no slip
                     if config[name] != DEFAULTS[name] and not config['eval_only']]
        require(not misplaced, f"{' and '.join(misplaced)}: for --eval_only=true (scoring a text) only")
        self.checkpoint_inode = inode(self.source)  # before it is read
        self.checkpoint = load_checkpoint(self.source) if modes else None
        if modes:
            log(f"{doing[modes[0]]} from {self.source}, step {self.checkpoint['step']}")
            config, overridden = merge_checkpoint_config(config, overridden, self.checkpoint, modes == ['init_from'])
        check_config(config, overridden)
        if overridden:
            trained = self.checkpoint['config'] if config['resume'] else {}  # resuming: what each one changes
            was = {name: f" (was {value!r})" for name, value in trained.items()
                   if value != config.get(name, value) and name not in COMMAND_KEYS}
            log("overrides: " + ", ".join(f"{name}={config[name]!r}{was.get(name, '')}"
                                          for name in dict.fromkeys(overridden)))
        if config['resume']:
            check_resume(config, overridden, self.checkpoint)
        require(config['sample_only'] or config['eval_only'] or
                config['gradient_accumulation_steps'] % self.world_size == 0,
                f"gradient_accumulation_steps ({config['gradient_accumulation_steps']}) must be divisible by the "
                f"number of processes ({self.world_size})")
        return config

    def build_model(self):
        """The model, its optimizer, scaler and batch generator, and the run's progress: from the checkpoint, if any."""
        torch.manual_seed(self.config['seed'])  # the initial weights
        self.model = self.fast_model = self.train_model = create_model(self.config, len(self.chars)).to(self.device)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = make_optimizer(self.model, self.config, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.generator = torch.Generator(self.device).manual_seed(self.config['seed'])
        resumed = self.checkpoint if self.config['resume'] else {}  # sampling, scoring, init_from: the weights only
        try:
            if self.checkpoint:
                self.model.load_state_dict(placed_by_character(self.model, self.checkpoint, self.chars))
            if resumed:
                self.optimizer.load_state_dict(resumed['optimizer'])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UsageError(f"{self.source} does not fit this model: {' '.join(str(e).split())[:300]}") from None
        if resumed:
            if resumed['scaler']:  # empty unless the checkpoint was trained in float16
                self.scaler.load_state_dict(resumed['scaler'])
            try:  # the batch order goes on where it stopped, unless saved on another kind of device
                self.generator.set_state(resumed['rng']['batches'].cpu())
            except RuntimeError:  # this device's kind of generator, seeded as at the start, draws other batches
                log("note: the checkpoint's batch order was saved on another kind of device: new batches from here on")
        self.start_step, self.saved_step = resumed.get('step', 0), resumed.get('step')
        self.defaults = resumed.get('defaults', DEFAULTS)  # the top of the script as the run began: edits since, noted
        self.best_val_loss = resumed.get('best_val_loss', float('inf'))
        self.step_seconds, self.eval_seconds, self.tokens = (resumed.get(key, 0)  # 0: checkpoints without them
                                                             for key in ('step_seconds', 'eval_seconds', 'tokens'))
        log(f"{SCRIPT}: {self.params:,} parameters ({self.params / 1e6:.2f}M), device {self.device}, dtype "
            f"{str(self.dtype)[6:]}" + (f", {self.world_size} processes" if self.distributed else ""))

def placed_by_character(model, checkpoint, chars):
    """The checkpoint's weights as a state dict for model, by character, never by index: the rows (and columns) on
    the VOCAB_AXES go to their character's place, rows past the characters (MLP's blank) stay last, added ones fresh."""
    places, placed = [chars.index(c) for c in checkpoint['chars']], dict(checkpoint['model'])
    for name, axes in VOCAB_AXES.items():
        placed[name] = weights = model.state_dict()[name].clone()
        index = [torch.tensor(places + list(range(len(chars), weights.size(axis))), device=weights.device) for axis in axes]
        weights[torch.meshgrid(*index, indexing='ij')] = checkpoint['model'][name].to(weights.device)
    return placed

def merge_checkpoint_config(config, overridden, checkpoint, starting):
    """The checkpoint's config under this command's overrides and the settings it predates, or, starting from its
    weights, this command's with its model shape. Sampling takes only the sampling overrides, saying what it ignores."""
    trained = checkpoint['config']
    edited = {name: f"{name}={config[name]!r}" for name, value in checkpoint.get('defaults', {}).items()
              if DEFAULTS.get(name, value) != value and name not in [*overridden, *COMMAND_KEYS, 'init_from']}
    used = SAMPLING_KEYS if config['sample_only'] else SCORING_KEYS if config['eval_only'] else MODEL_KEYS
    given = [] if config['resume'] else [name for name in edited if name in used]  # the model's shape: checked below
    if given or (config['resume'] and edited):
        log(f"note: changed at the top of {SCRIPT} since this checkpoint, " + (
            f"so taken as given: {', '.join(map(edited.get, given))}" if given else f"not taken (a resumed run keeps "
            f"its own settings; --name=value changes one): {', '.join(edited.values())}"))
    overridden = given + list(overridden)
    taken = [name for name in (MODEL_KEYS if starting else trained) if name in trained and name not in COMMAND_KEYS]
    merged = dict(config, **{name: trained[name] for name in taken})
    if config['sample_only'] or config['eval_only']:
        ignored = [name for name in dict.fromkeys(overridden)  # init_from names the checkpoint: not ignored
                   if name not in used + ('init_from',) and config[name] != merged[name]]
        if ignored:
            log(f"{'sampling' if config['sample_only'] else 'scoring'} takes the model as it was trained: ignored "
                + ", ".join(f"{name}={config[name]!r} (trained with {merged[name]!r})" for name in ignored))
        overridden = [name for name in overridden if name in used]
    if config['resume']:  # the run settled (or set) its steps, and took the weights it started from, when it started
        if 'time_budget' in overridden and config['time_budget'] != merged['time_budget']:
            log(f"note: time_budget={config['time_budget']!r} changes nothing: a resumed run goes on to max_iters")
        overridden = [name for name in overridden if name not in ('time_budget', 'init_from')]
    for name in overridden:
        if name in MODEL_KEYS and config[name] != merged[name]:
            raise UsageError(f"{name} = {config[name]!r} here, but the checkpoint was trained with {name} = "
                             f"{merged[name]!r}: drop the change, or train afresh in another --out_dir")
        merged[name] = config[name]
    return merged, overridden

def check_resume(config, overridden, checkpoint):
    """Refuse a max_iters the checkpoint has passed; say when a schedule override cannot change the steps left."""
    step, trained = checkpoint['step'], checkpoint['config']
    require(config['max_iters'] >= step, f"max_iters = {config['max_iters']}, but the checkpoint is at step {step}: "
                                         f"give --max_iters={step} or more (or --sample_only=true to sample from it)")
    for name in sorted({'learning_rate', 'min_lr', 'warmup_iters', 'lr_decay_iters'} & set(overridden)):
        before = dict(config, **{name: trained[name]})
        if config[name] != trained[name] and all(learning_rate_at(s, config) == learning_rate_at(s, before)
                                                 for s in range(step, config['max_iters'])):
            log(f"note: {name}={config[name]!r} changes nothing: steps {step} to {config['max_iters']} have the same "
                f"learning rate with the checkpoint's {trained[name]!r} (lr warmup to {config['warmup_iters']}, "
                f"min_lr from {config['lr_decay_iters']})")

def pick_device(name, local_rank):
    """'auto' takes CUDA, then Apple MPS, then the CPU; under torchrun each process takes GPU LOCAL_RANK."""
    require(re.fullmatch(r'auto|cpu|mps|cuda(:\d+)?', name),
            f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps")
    missing = {'cuda': None if torch.cuda.is_available() else 'CUDA is not available here (no GPU, or a CPU-only torch)',
               'mps': None if torch.backends.mps.is_available() else 'Apple MPS is not available here', 'cpu': None}
    if name == 'auto':
        name = next(kind for kind, why in missing.items() if why is None)
    device = torch.device(name)
    require(not missing[device.type], f"device '{name}' asked for, but {missing[device.type]}: use --device=cpu")
    if device.type == 'cuda':
        device = torch.device('cuda', local_rank if local_rank is not None else device.index or 0)
        require(device.index < torch.cuda.device_count(),
                f"device '{device}' asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(device)  # the current device, for NCCL under torchrun
    return device

def pick_dtype(name, device):
    """'auto': bfloat16 where it is native: GPUs from compute capability 8.0 (Ampere) on, and CPUs with AMX (5-9x faster
    matmuls than float32); float16 with the scaler on older GPUs (V100, T4 emulate bfloat16, slowly); else float32."""
    has_amx = getattr(torch.cpu, '_is_amx_tile_supported', lambda: False)  # torch's check; private, so maybe absent
    if name == 'auto' and device.type == 'cuda':
        name = 'bfloat16' if torch.cuda.get_device_capability(device)[0] >= 8 else 'float16'
    elif name == 'auto':
        name = 'bfloat16' if device.type == 'cpu' and has_amx() else 'float32'
    return getattr(torch, name)

def make_optimizer(model, config, device):
    """AdamW with weight decay on the weight matrices of Linear layers only: not on biases, LayerNorms, embeddings."""
    matrices = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    groups = [{'params': [p for p in model.parameters() if id(p) in matrices], 'weight_decay': config['weight_decay']},
              {'params': [p for p in model.parameters() if id(p) not in matrices], 'weight_decay': 0.0}]
    return torch.optim.AdamW([g for g in groups if g['params']], lr=config['learning_rate'],
                             betas=(config['beta1'], config['beta2']), fused=device.type in ('cuda', 'cpu'))

def compiled(run):
    """torch.compile, tried up front on a real batch in training and in evaluation (each builds its own graph), so
    that a failure falls back to eager in one line and compiling is never counted as training or evaluation time."""
    started = time.perf_counter()
    compiled_model = torch.compile(run.model)
    x, y = get_batch(run.splits['train'], run.config['batch_size'], run.config['block_size'],
                     torch.Generator(run.device))  # as training draws them: a view, whose strides are part of the graph
    try:
        with run.autocast:
            compiled_model(x, y)[1].backward()
        estimate_loss(compiled_model, run.splits, dict(run.config, eval_iters=1), run.autocast)
    except torch.cuda.OutOfMemoryError:
        raise  # no compile failure (eager would run out too): reported once, by run_command_line
    except Exception as e:
        log(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:100]}): running eagerly")
        compiled_model = run.model
    else:
        log(f"compiled the model in {time.perf_counter() - started:.1f} s")
    run.model.zero_grad(set_to_none=True)  # the probe's gradients
    return compiled_model

# ---- training
class TrainingError(Exception):
    """The run cannot go on (a NaN loss): reported as one line on stderr, exit code 1."""
    exit_code = 1

def main(config, overridden=()):
    """Train, resume, sample or score, as config says: returns the summary, the samples' path or the figures."""
    run = Run(dict(config), overridden)
    work = write_samples if run.config['sample_only'] else score_text if run.config['eval_only'] else train
    with run.lock or contextlib.nullcontext():  # closing the lock file releases out_dir
        result = work(run) if work is train or run.rank == 0 else None  # one process samples or scores
    if run.distributed:  # on every way out but an error, which ends the job anyway
        dist.barrier()  # together: a rank tearing down while rank 0 still scores and samples aborted (1 run in 27)
        dist.destroy_process_group()
    return result

def train(run):
    """The training loop: evaluate every eval_interval steps and at the end, checkpoint when val improves."""
    config = run.config
    tokens_per_step = config['gradient_accumulation_steps'] * config['batch_size'] * config['block_size']
    if config['compile_model'] and run.device.type == 'cuda':
        run.fast_model = run.train_model = compiled(run)
    if run.world_size > 1:  # the only buffers (rotary frequencies) are constants: nothing to broadcast each step
        renamed = 'forward_sync_buffers' in inspect.signature(DDP).parameters  # in torch 2.13
        run.train_model = DDP(run.fast_model, **{'forward_sync_buffers' if renamed else 'broadcast_buffers': False})
    if config['time_budget'] and not config['resume']:
        settle_budget(run)
    if run.rank == 0:
        start_metrics(run.metrics_path, run.start_step)
    warn_if_slow(run.device, run.params * 6 * tokens_per_step * (config['max_iters'] - run.start_step))
    log(f"training: {tokens_per_step:,} tokens per step, steps {run.start_step} to {config['max_iters']}, "
        f"lr warmup {config['warmup_iters']} then cosine to {config['min_lr']:g} at step {config['lr_decay_iters']}")
    losses = dict.fromkeys(['train_loss', 'val_loss', 'val_loss_full'], float('nan'))
    pending = []  # (step, loss on the device) not yet read back
    bar = tqdm(total=config['max_iters'], initial=run.start_step, unit='step', disable=run.rank != 0 or None, dynamic_ncols=True)
    with stop_requests() if run.world_size == 1 else contextlib.nullcontext([]) as stop_requested:
        for step in range(run.start_step, config['max_iters'] + 1):
            last_step = step == config['max_iters']
            if step % config['eval_interval'] == 0 or last_step:
                read_back(run, pending, bar)
                if run.rank == 0:
                    started = time.perf_counter()
                    estimate = estimate_loss(run.fast_model, run.splits, config, run.autocast, stop_requested)
                    took = time.perf_counter() - started  # counted after this step's checkpoint: a resume redoes it
                    if stop_requested:
                        raise stopped(run, step, losses)
                    if not all(map(math.isfinite, estimate.values())):
                        raise diverged(run, f"the estimated loss is {estimate} at step {step}")
                    losses.update(estimate)
                    tokens_per_second = run.tokens / max(run.step_seconds, 1e-9)  # over all steps, resumes included
                    eta = (config['max_iters'] - step) * tokens_per_step / max(tokens_per_second, 1e-9)
                    log(f"step {step}: train loss {losses['train_loss']:.4f}, val loss {losses['val_loss']:.4f}"
                        + (f" ({tokens_per_second:,.0f} tokens/s, ETA {eta:.0f} s)" if run.tokens else ""))
                    record = {'step': step, **estimate, 'lr': learning_rate_at(step, config), 'tokens': run.tokens,
                              'elapsed': (run.eval_seconds + took) + run.step_seconds,  # train_seconds' sum, to the bit
                              'tokens_per_second': tokens_per_second}
                    with open(run.metrics_path, 'a') as f:
                        f.write(json.dumps(record) + '\n')  # one whole line per write
                    if losses['val_loss'] < run.best_val_loss:
                        run.best_val_loss = losses['val_loss']
                        if run.start_step < step < config['max_iters']:
                            save_checkpoint(run, step, losses)
                    if not last_step:  # the last is counted after the final checkpoint
                        run.eval_seconds += took
            if last_step:
                break
            started = time.perf_counter()
            pending.append((step, train_step(run, step)))
            if len(pending) == config['log_interval'] or stop_requested:
                read_back(run, pending, bar)
            run.step_seconds += time.perf_counter() - started
            run.tokens += tokens_per_step
            bar.update()
            if stop_requested:
                raise stopped(run, step + 1, losses)
        bar.close()
        if run.rank == 0:  # scoring a large val split takes minutes: a stop keeps the steps all the same
            losses.update(loss_and_bits(run, run.splits['val'], stop_requested))
            if stop_requested:
                raise stopped(run, config['max_iters'], losses)
    if run.rank != 0:
        return None
    save_checkpoint(run, config['max_iters'], losses)
    run.eval_seconds += took
    bpc, bpb = f"{losses['val_bpc']:.4f}", f"{losses['val_bpb']:.4f}"  # bits per byte where they differ
    log(f"val_loss_full {losses['val_loss_full']:.4f} nats = {bpc} bits per character"
        + (f", {bpb} per UTF-8 byte" if bpb != bpc else "") + f" (every val character once); "
        f"trained {run.step_seconds + run.eval_seconds:.1f} s at {tokens_per_second:,.0f} tokens/s")
    samples_path = write_samples(run)
    summary = {'script': SCRIPT, 'config': config, 'iters': config['max_iters'], **losses,
               'best_val_loss': run.best_val_loss, 'train_seconds': run.step_seconds + run.eval_seconds,
               'eval_seconds': run.eval_seconds, 'tokens': run.tokens, 'tokens_per_second': tokens_per_second,
               'device': str(run.device), 'dtype': str(run.dtype)[6:], 'processes': run.world_size,
               'params': run.params, 'torch': torch.__version__, 'samples_path': samples_path,
               'checkpoint': run.ckpt_path, 'text_sha256': run.text_sha256}
    summary_path = os.path.join(config['out_dir'], 'summary.json')
    write_atomic(summary_path, lambda f: f.write(json.dumps(summary, indent=2).encode()))
    log(f"wrote {summary_path}, {run.metrics_path}, {run.ckpt_path}")
    return summary

def settle_budget(run):
    """Set max_iters = lr_decay_iters to fill time_budget, as timed on a few steps (undone after) and an estimate."""
    config, keepers = run.config, (run.model, run.optimizer, run.scaler)
    saved, batches = copy.deepcopy([keeper.state_dict() for keeper in keepers]), run.generator.get_state()
    seconds = []  # of each step; the first 3 pay for allocations and kernel choices: not counted
    while len(seconds) < 8 or sum(seconds[3:]) < min(3.0, 0.02 * config['time_budget']):
        started = time.perf_counter()
        train_step(run, len(seconds)).item()
        took = torch.tensor(time.perf_counter() - started, device=run.device)
        if run.world_size > 1:  # rank 0's clock for all: every process times as many steps (each one is collective)
            dist.broadcast(took, 0)
        seconds.append(took.item())
    step_seconds = sum(seconds[3:]) / len(seconds[3:])
    for keeper, state in zip(keepers, saved):
        keeper.load_state_dict(state)
    run.generator.set_state(batches)
    started = time.perf_counter()
    if run.rank == 0:
        estimate_loss(run.fast_model, run.splits, config, run.autocast)
    eval_seconds = time.perf_counter() - started
    # steps * step_seconds + (steps / eval_interval + 2) * eval_seconds = time_budget
    fit = (config['time_budget'] - 2 * eval_seconds) / (step_seconds + eval_seconds / config['eval_interval'])
    steps = torch.tensor(max(0, int(fit)), device=run.device)  # NCCL broadcasts device tensors only
    if run.world_size > 1:
        dist.broadcast(steps, 0)  # every process takes rank 0's count
    config['max_iters'] = config['lr_decay_iters'] = steps = steps.item()
    require(steps > config['warmup_iters'], f"a time budget of {config['time_budget']:g} s fits only {steps} steps "
            f"here (at {1000 * step_seconds:.1f} ms a step), no more than warmup_iters = {config['warmup_iters']}")
    log(f"time budget {config['time_budget']:g} s: {1000 * step_seconds:.1f} ms a step and {eval_seconds:.2f} s an "
        f"estimate fit {steps:,} steps. The same run without the budget: "
        f"{this_command(time_budget=0, max_iters=steps, lr_decay_iters=steps)}")

def train_step(run, step):
    """One optimizer step over the global batch. Every process draws the whole batch from the same generator
    and trains on its own micro-batches, so the data (and the result) do not depend on the number of processes."""
    config, batch_size = run.config, run.config['batch_size']
    for group in run.optimizer.param_groups:
        group['lr'] = learning_rate_at(step, config)
    generator = torch.cuda.default_generators[run.device.index] if run.device.type == 'cuda' else torch.default_generator
    generator.manual_seed(hash((config['seed'], run.rank, step)))  # dropout draws from it: per rank and step, never saved
    x, y = get_batch(run.splits['train'], config['gradient_accumulation_steps'] * batch_size, config['block_size'],
                     run.generator)
    micro_steps = config['gradient_accumulation_steps'] // run.world_size
    mine = slice(run.rank * micro_steps * batch_size, (run.rank + 1) * micro_steps * batch_size)
    step_loss = torch.zeros((), device=x.device)
    for i, (xb, yb) in enumerate(zip(x[mine].split(batch_size), y[mine].split(batch_size))):
        # gradients are averaged across processes on the last micro-step only
        with run.train_model.no_sync() if run.world_size > 1 and i < micro_steps - 1 else contextlib.nullcontext():
            with run.autocast:
                _, loss = run.train_model(xb, yb)
            run.scaler.scale(loss / micro_steps).backward()
        step_loss += loss.detach().float() / micro_steps
    if config['grad_clip']:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config['grad_clip'])
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return step_loss

def learning_rate_at(step, config):
    """Linear warmup to learning_rate, cosine decay to min_lr at lr_decay_iters, min_lr after."""
    if step < config['warmup_iters']:
        return config['learning_rate'] * (step + 1) / (config['warmup_iters'] + 1)
    if step >= config['lr_decay_iters']:
        return config['min_lr']
    progress = (step - config['warmup_iters']) / (config['lr_decay_iters'] - config['warmup_iters'])
    return config['min_lr'] + 0.5 * (1 + math.cos(math.pi * progress)) * (config['learning_rate'] - config['min_lr'])

def read_back(run, pending, bar):
    """Bring the pending step losses to the host (averaged over processes), stop at the first that is not finite."""
    if not pending:
        return
    values = torch.stack([loss for _, loss in pending])
    if run.world_size > 1:
        dist.all_reduce(values)
        values /= run.world_size
    for (step, _), value in zip(pending, values.tolist()):
        if not math.isfinite(value):
            raise diverged(run, f"the loss is {value} at step {step}")
    bar.set_postfix(loss=f"{values[-1]:.4f}")
    pending.clear()

def diverged(run, what):
    kept = ("rank 0 says which checkpoint holds good weights" if run.rank != 0 else  # rank 0 alone writes checkpoints
            "this run wrote no checkpoint" if run.saved_step is None else
            f"{run.ckpt_path} keeps the weights of step {run.saved_step}")
    clip = "" if run.config['grad_clip'] else " or --grad_clip=1"
    return TrainingError(f"{what}: stopping; {kept}. Try a --learning_rate below {run.config['learning_rate']:g}{clip}")

def stopped(run, step, losses):
    """Ctrl-C: checkpoint at step, and the command that continues from it (this_command says how it is written)."""
    if step != run.saved_step:  # else the checkpoint holds this very state already, with its losses
        save_checkpoint(run, step, losses)
    return KeyboardInterrupt(f"saved {run.ckpt_path} at step {step}; continue with: "
                             f"{this_command(resume='true', init_from='' if run.config['init_from'] else None)}")

def this_command(**changes):
    """The command that started this process with `changes` (None drops a setting), quoted to be pasted back."""
    kept = [arg for arg in sys.argv[1:] if arg.partition('=')[0][2:] not in changes]
    added = [f"--{k}={v}" for k, v in changes.items() if v is not None]
    launcher = (f"torchrun --standalone --nproc_per_node={os.environ['WORLD_SIZE']}" if 'RANK' in os.environ
                else 'python')  # as many processes: dropout differs by rank
    return f"{launcher} {shlex.join([sys.argv[0], *kept, *added])}"

@contextlib.contextmanager
def stop_requests():
    """A list the first Ctrl-C appends to: the loop stops after this step or evaluation batch; a second stops now."""
    requested = []

    def handler(signum, frame):
        requested.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(RuntimeError):  # "reentrant call": the signal came in the middle of a print
            log("interrupt: saving a checkpoint after this step or evaluation batch (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)

def warn_if_slow(device, flops):
    if device.type == 'cpu' and flops > 1e14:
        cpu_config = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', f"{SCRIPT[:-3]}_cpu.py")
        hint = (f"python {os.path.relpath(__file__)} {os.path.relpath(cpu_config)}" if os.path.exists(cpu_config)
                else "fewer steps or a smaller model")
        log(f"note: these settings are sized for a GPU and this is a CPU (about {flops:.1e} FLOPs: many hours). "
            f"For a run of a few minutes: {hint}")

# ---- command line
def run_command_line(args):
    """--help, or main with the overrides, its expected failures turned into one line on stderr and an exit code."""
    if '-h' in args or '--help' in args:
        with open(__file__, encoding='utf-8') as f:
            block = f.read().partition(' hyperparameters\n')[2].partition('\nDEFAULTS = ')[0]
        hyperparameters = block.partition('\n# ' + '-' * 20)[0]
        log(f"{__doc__.strip()}\n\nHyperparameters (--name=value overrides one; config files hold name = value lines):"
            f"\n{hyperparameters}\n")
        return 0
    prefix = f"{SCRIPT}" + (f" [rank {os.environ['RANK']}]" if 'RANK' in os.environ else "")
    try:
        for name, kind in TYPES.items():  # the values at the top of this file, as edited there
            DEFAULTS[name] = typed(name, globals().get(name), kind, f"at the top of {SCRIPT}: ")
        main(*parse_overrides(args, DEFAULTS))
        return 0
    except (UsageError, TrainingError, OSError) as e:  # OSError: a full disk, out_dir removed under the run
        problem, exit_code = f"error: {e}", getattr(e, 'exit_code', 1)  # 1: the run failed, its last checkpoint kept
    except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one (torch.OutOfMemoryError is new in torch 2.5)
        gpu = isinstance(e, torch.cuda.OutOfMemoryError)
        if gpu or "can't allocate memory" in str(e):  # the GPU's allocator, or the CPU's
            problem, exit_code = (f"error: out of {'GPU ' * gpu}memory: try a smaller --batch_size or --block_size "
                                  f"(with more --gradient_accumulation_steps to keep the batch)"), 2
        elif os.environ.get('RANK', '0') != '0':  # a collective broke off: the process that failed says why
            problem, exit_code = "stopped: another process of this torchrun job failed", 1
        else:
            raise
    except KeyboardInterrupt as e:
        problem, exit_code = "interrupted" + (f": {e}" if str(e) else ""), 130
    print(f"{prefix}: {problem}", file=sys.stderr)
    return exit_code
# ==================================================================================== end of the engine

if __name__ == '__main__':
    sys.exit(run_command_line(sys.argv[1:]))
