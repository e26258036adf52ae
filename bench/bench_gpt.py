"""
bench/bench_gpt.py: how fast gpt.py trains and samples, beside a plain reference of the same model.

    python bench/bench_gpt.py                                   # gpt.py's defaults (sized for a GPU)
    python bench/bench_gpt.py configs/gpt_cpu.py --steps=10 --sample_chars=300
    python bench/bench_gpt.py configs/gpt_cpu.py --target_loss=1.7 --json=out/bench.json

Config files and --name=value arguments are gpt.py's (read with gpt.parse_overrides), so this measures
the model and the training step that `python gpt.py <the same arguments>` would run. Its own options:

    --steps=20                  timed training steps per model, after --warmup_steps=3 untimed ones
    --sample_chars=2000         characters sampled per sequence for each sampling rate, in gpt.py's
                                num_samples sequences at once (--num_samples=1 for one sequence)
    --target_loss=0             above 0: also run gpt.py itself and time it to that val loss (a whole run)
    --time_to_loss_budget=3600  seconds that run may take before it is stopped
    --peak_flops=0              the accelerator's peak FLOP/s for MFU; 0 looks the GPU up in PEAK_FLOPS
    --json=PATH                 also write the summary there as JSON (out/... is git-ignored)

Training: ms/step, tokens/s and (on a GPU) MFU of gpt.train_step, for gpt.py's model (compiled on CUDA) and
for the reference: the lecture's model, one Head module per attention head with a masked softmax, not
compiled, with the same sizes, dtype, autocast and AdamW; then the ratio of their tokens/s.
Sampling: characters/s of num_samples sequences at once from gpt.py's model with its key/value cache (model.generate),
from the same model recomputing the whole context for each character (generate_without_cache, as the lecture
does), and from the reference the same way. Both run without autocast, as gpt.py samples.
"""
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import gpt  # noqa: E402  (nothing runs on import)

BENCH_DEFAULTS = {'steps': 20, 'warmup_steps': 3, 'sample_chars': 2000, 'target_loss': 0.0,
                  'time_to_loss_budget': 3600.0, 'peak_flops': 0.0, 'json': ''}
# dense bf16/fp16 tensor-core peaks, first match on the GPU's name wins
PEAK_FLOPS = (('H100 PCIe', 756e12), ('H100 NVL', 835e12), ('H100', 989e12), ('H200', 989e12), ('A100', 312e12))
SAMPLE_WARMUP = 10  # characters sampled untimed before each sampling rate

# ------------------------------------------------------------------ the reference: the lecture's model
class Head(nn.Module):
    """One head of self-attention: its own key, query and value projections and a masked softmax."""

    def __init__(self, n_embd, head_size, block_size, dropout):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k, q = self.key(x), self.query(x)  # (B, T, hs)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))
        wei = self.dropout(F.softmax(wei, dim=-1))
        return wei @ self.value(x)  # (B, T, hs)

class MultiHeadAttention(nn.Module):
    """The heads run one after another, their outputs concatenated and projected."""

    def __init__(self, n_embd, n_head, block_size, dropout):
        super().__init__()
        self.heads = nn.ModuleList([Head(n_embd, n_embd // n_head, block_size, dropout) for _ in range(n_head)])
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(torch.cat([head(x) for head in self.heads], dim=-1)))

class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout):
        super().__init__()
        self.sa = MultiHeadAttention(n_embd, n_head, block_size, dropout)
        self.ffwd = gpt.FeedForward(n_embd, dropout)
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))

class ReferenceGPT(nn.Module):
    """The lecture's GPTLanguageModel: forward(idx, targets) -> (logits, loss), like gpt.GPT."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head, block_size, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T, device=idx.device))
        logits = self.lm_head(self.ln_f(self.blocks(x)))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))

@torch.inference_mode()
def generate_without_cache(model, idx, max_new_tokens, context, generator):
    """The lecture's generate: crop to the last `context` characters, predict, sample, append, repeat."""
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -context:])
        idx = torch.cat((idx, gpt.sample_next(logits[:, -1], 1.0, None, generator)), dim=1)
    return idx

def create_reference(config, vocab_size):
    return ReferenceGPT(vocab_size, config['block_size'], config['n_layer'], config['n_head'], config['n_embd'],
                        config['dropout'])

# ------------------------------------------------------------------ setup
def parse_args(args):
    """(bench options, gpt config, the arguments meant for gpt.py): bench options are picked out by name."""
    mine = [arg for arg in args if arg.startswith('--') and arg[2:].partition('=')[0] in BENCH_DEFAULTS]
    theirs = [arg for arg in args if arg not in mine]
    options, _ = gpt.parse_overrides(mine, BENCH_DEFAULTS)
    config, _ = gpt.parse_overrides(theirs, gpt.DEFAULTS)
    gpt.check_config(config)
    for name in ('steps', 'sample_chars', 'time_to_loss_budget'):
        if options[name] <= 0:
            raise gpt.UsageError(f"{name} must be positive, got {options[name]}")
    for name in ('warmup_steps', 'target_loss', 'peak_flops'):  # 0: no warmup, no time to loss, the table's peak
        if options[name] < 0:
            raise gpt.UsageError(f"{name} must not be negative, got {options[name]}")
    check_json_path(options['json'])
    return options, config, theirs

def check_json_path(path):
    """Refuse a --json path that cannot be written now, before minutes of measuring: try its temporary file."""
    if not path:
        return
    if os.path.isdir(path):
        raise gpt.UsageError(f"json: {path} is a folder")
    try:
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        with open(f"{path}.tmp", 'wb'):
            pass
        os.remove(f"{path}.tmp")
    except OSError as e:
        raise gpt.UsageError(f"json: cannot write {path} ({e.strerror})") from None

def environment(config):
    """Device, dtype, autocast, vocabulary, training data and prompt, chosen as gpt.main chooses them
    (TF32 matmuls allowed, as there)."""
    device = gpt.pick_device(config['device'], None)
    dtype = gpt.pick_dtype(config['dtype'], device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    chars, splits, _ = gpt.load_data(config, None, device)
    return SimpleNamespace(
        device=device, dtype=dtype, chars=chars, train_data=splits['train'],
        autocast=torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext(),
        prompt=gpt.prompt_ids(config, chars).long().to(device)[None])

def warn_if_slow(model, config, env, options):
    """Say at once when the settings are sized for a GPU and this is a CPU: the training steps alone take minutes."""
    tokens = config['gradient_accumulation_steps'] * config['batch_size'] * config['block_size']
    flops = 2 * flops_per_token(model, config) * tokens * (options['steps'] + options['warmup_steps'])  # two models
    if env.device.type == 'cpu' and flops > 1e13:
        gpt.log(f"note: these settings are sized for a GPU and this is a CPU (about {flops:.1e} FLOPs of training "
                f"steps: many minutes). For a quick look: python {sys.argv[0]} configs/gpt_cpu.py --steps=10 "
                f"--sample_chars=300")

def describe(env, config, options):
    """The machine and the sizes: the first lines of the summary."""
    if env.device.type == 'cuda':
        hardware = torch.cuda.get_device_name(env.device)
    else:
        hardware = f"{env.device.type}, {torch.get_num_threads()} threads"
    return {'device': hardware, 'torch': torch.__version__, 'dtype': str(env.dtype)[6:],
            'batch_size': config['batch_size'], 'block_size': config['block_size'], 'n_layer': config['n_layer'],
            'n_head': config['n_head'], 'n_embd': config['n_embd'], 'timed_steps': options['steps'],
            'sample_chars': options['sample_chars']}

def peak_flops(env, options):
    """The peak FLOP/s to divide by for MFU: --peak_flops, else the table for bf16/fp16 on a known GPU, else None."""
    if options['peak_flops']:
        return options['peak_flops']
    if env.device.type != 'cuda' or env.dtype == torch.float32:
        return None
    name = torch.cuda.get_device_name(env.device)
    return next((peak for key, peak in PEAK_FLOPS if key in name), None)

def flops_per_token(model, config):
    """nanoGPT's estimate: 6 per matmul parameter (all but the embedding tables, which are lookups)
    plus 12 * n_layer * n_embd * block_size for the attention scores and their use."""
    lookups = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    matmul_params = sum(p.numel() for p in model.parameters()) - lookups
    return 6 * matmul_params + 12 * config['n_layer'] * config['n_embd'] * config['block_size']

def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    elif device.type == 'mps':
        torch.mps.synchronize()

def timed(device, work):
    """(work(), seconds it took), with the device's queue drained before both clock readings."""
    synchronize(device)
    started = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - started

# ------------------------------------------------------------------ measurements
def time_training(model, compile_model, config, env, options):
    """ms/step, tokens/s and MFU of gpt.train_step (AdamW, clipping, autocast) on model, after warmup steps."""
    run = SimpleNamespace(  # what gpt.train_step and gpt.compiled read of a gpt.Run, for one process
        config=config, model=model, train_model=model, optimizer=gpt.make_optimizer(model, config, env.device),
        scaler=torch.amp.GradScaler(env.device.type, enabled=env.dtype == torch.float16), autocast=env.autocast,
        generator=torch.Generator(env.device).manual_seed(config['seed']), splits={'train': env.train_data},
        rank=0, world_size=1, device=env.device)
    if compile_model and env.device.type == 'cuda':  # as gpt.train does
        run.train_model = gpt.compiled(run)
    accumulation = config['gradient_accumulation_steps']

    def train(steps):
        losses = [gpt.train_step(run, step) for step in range(steps)]
        return losses[-1] if losses else None

    train(options['warmup_steps'])
    loss, seconds = timed(env.device, lambda: train(options['steps']))
    if not math.isfinite(loss.item()):
        raise gpt.TrainingError(f"the training loss is {loss.item()}: the timing would mean nothing")
    tokens_per_s = accumulation * config['batch_size'] * config['block_size'] * options['steps'] / seconds
    peak = peak_flops(env, options)
    return {'params': sum(p.numel() for p in model.parameters()), 'compiled': run.train_model is not model,
            'ms_per_step': round(1000 * seconds / options['steps'], 2), 'tokens_per_s': round(tokens_per_s),
            'mfu': round(tokens_per_s * flops_per_token(model, config) / peak, 4) if peak else None}

def sampling_rate(generate, env, options, samples):
    """Characters per second of generate(idx, n, generator) continuing the prompt in `samples` sequences at
    once (gpt.py's num_samples), after a short warmup; the model is in eval mode."""
    generator = torch.Generator(env.device).manual_seed(0)
    prompts = env.prompt.expand(samples, -1)
    generate(prompts, SAMPLE_WARMUP, generator)
    _, seconds = timed(env.device, lambda: generate(prompts, options['sample_chars'], generator))
    return round(samples * options['sample_chars'] / seconds, 1)

def bench_gpt(config, env, options):
    """gpt.py's model: training figures, then its cached and uncached sampling rates."""
    torch.manual_seed(config['seed'])
    model = gpt.create_model(config, len(env.chars)).to(env.device)
    warn_if_slow(model, config, env, options)
    gpt.log(f"gpt.py: timing {training_steps(options['steps'])}")
    results = prefixed('gpt', time_training(model, config['compile_model'], config, env, options))
    model.eval()
    gpt.log(f"gpt.py: sampling {config['num_samples']} x {options['sample_chars']} characters with and without the "
            f"key/value cache")
    results['sample_cached_chars_per_s'] = sampling_rate(
        lambda idx, n, g: model.generate(idx, n, temperature=1.0, top_k=None, generator=g), env, options,
        config['num_samples'])
    results['sample_uncached_chars_per_s'] = sampling_rate(
        lambda idx, n, g: generate_without_cache(model, idx, n, model.block_size, g), env, options,
        config['num_samples'])
    return results

def bench_reference(config, env, options):
    """The lecture's model, eager: training figures and its (uncached) sampling rate."""
    torch.manual_seed(config['seed'])
    model = create_reference(config, len(env.chars)).to(env.device)
    gpt.log(f"reference: timing {training_steps(options['steps'])}")
    results = prefixed('ref', time_training(model, False, config, env, options))
    model.eval()
    gpt.log(f"reference: sampling {config['num_samples']} x {options['sample_chars']} characters")
    results['sample_reference_chars_per_s'] = sampling_rate(
        lambda idx, n, g: generate_without_cache(model, idx, n, config['block_size'], g), env, options,
        config['num_samples'])
    return results

def time_to_loss(gpt_args, options):
    """Run gpt.py as a person would (its output shows), then read from its metrics.jsonl the training
    seconds (gpt.py's 'elapsed': steps and evaluations, not start-up or compilation) at the first
    evaluation with val_loss <= target_loss, and the final val_loss_full from its summary.json."""
    target = options['target_loss']
    with tempfile.TemporaryDirectory(prefix='bench_gpt_') as out_dir:
        command = [sys.executable, os.path.join(ROOT, 'gpt.py'), *gpt_args, f'--out_dir={out_dir}']
        gpt.log(f"time to val loss {target}: running {' '.join(command)}")
        started = time.perf_counter()
        try:
            subprocess.run(command, check=True, timeout=options['time_to_loss_budget'])
        except subprocess.TimeoutExpired:
            gpt.log(f"stopped gpt.py after the budget of {options['time_to_loss_budget']:g} s")
        except subprocess.CalledProcessError as e:
            raise gpt.TrainingError(f"gpt.py failed with exit code {e.returncode}") from None
        wall = time.perf_counter() - started
        evaluations = [json.loads(line) for line in read_if_there(os.path.join(out_dir, 'metrics.jsonl')).splitlines()]
        summary = json.loads(read_if_there(os.path.join(out_dir, 'summary.json')) or '{}')
    reached = next((e for e in evaluations if e['val_loss'] <= target), None)
    return {'target_loss': target,
            'seconds_to_target': round(reached['elapsed'], 1) if reached else None,
            'step_at_target': reached['step'] if reached else None,
            'final_val_loss_full': round(summary['val_loss_full'], 4) if summary else None,
            'run_finished': bool(summary), 'run_wall_seconds': round(wall, 1)}

def read_if_there(path):
    """The text of path, or '' when gpt.py was stopped before it wrote that file."""
    if not os.path.exists(path):
        return ''
    with open(path) as f:
        return f.read()

# ------------------------------------------------------------------ report
def training_steps(count):
    return f"{count} training step" + ("" if count == 1 else "s")

def prefixed(prefix, figures):
    return {f"{prefix}_{key}": value for key, value in figures.items()}

def ratio(a, b):
    return round(a / b, 2) if a and b else None

def report(summary, json_path):
    """The summary as `key: value` lines (None shows as n/a), and as JSON at json_path if one is given."""
    gpt.log("\n---- summary ----")
    for key, value in summary.items():
        gpt.log(f"{key}: {'n/a' if value is None else value}")
    if json_path:
        os.makedirs(os.path.dirname(json_path) or '.', exist_ok=True)
        gpt.write_atomic(json_path, lambda f: f.write(json.dumps(summary, indent=2).encode()))
        gpt.log(f"wrote {json_path}")

def main(args):
    options, config, gpt_args = parse_args(args)
    env = environment(config)
    summary = describe(env, config, options)
    summary.update(bench_gpt(config, env, options))
    summary.update(bench_reference(config, env, options))
    summary['train_speedup'] = ratio(summary['gpt_tokens_per_s'], summary['ref_tokens_per_s'])
    summary['sample_cache_speedup'] = ratio(summary['sample_cached_chars_per_s'], summary['sample_uncached_chars_per_s'])
    summary['sample_speedup_vs_reference'] = ratio(summary['sample_cached_chars_per_s'],
                                                   summary['sample_reference_chars_per_s'])
    gpt.log(f"gpt.py is {summary['train_speedup']}x the reference's training tokens/s; its cached sampling is "
            f"{summary['sample_cache_speedup']}x its uncached and {summary['sample_speedup_vs_reference']}x the "
            f"reference's")
    if options['target_loss'] > 0:
        summary.update(time_to_loss(gpt_args, options))
    report(summary, options['json'])

def run_command_line(args):
    """Run main; a usage problem is one line on stderr and exit code 2, a failed run or a failed write of --json
    exit code 1 (as gpt.py)."""
    if '-h' in args or '--help' in args:
        gpt.log(__doc__)  # quiet into a closed pipe (`| head`)
        return 0
    try:
        main(args)
    except (gpt.UsageError, gpt.TrainingError) as e:
        print(f"bench_gpt.py: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("bench_gpt.py: interrupted: nothing was written", file=sys.stderr)
        return 130
    except OSError as e:  # the --json write at the end (a full disk): gpt.write_atomic names the file
        print(f"bench_gpt.py: error: {e}", file=sys.stderr)
        return 1
    return 0

if __name__ == '__main__':
    sys.exit(run_command_line(sys.argv[1:]))
