"""The three models and the shared code around them: initial loss, learning, causality, generation
(GPT's key/value cache included), sample_next, full_loss, the learning-rate schedule and the optimizer groups."""
import collections
import contextlib
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import SCRIPTS, TINY, load

VOCAB = 65


def make(module, seed=0, **overrides):
    """The module's model at its TINY size (dropout 0 unless asked), seeded."""
    name = module.SCRIPT[:-3]
    config = dict(module.DEFAULTS, **TINY[name])
    if 'dropout' in config:
        config['dropout'] = 0.0
    config.update(overrides)
    torch.manual_seed(seed)
    return module.create_model(config, VOCAB), config


def randomize_head(model, seed=1):
    """The heads start at zero (every logit equal): give them random weights so outputs differ by input."""
    generator = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.startswith(('lm_head', 'table')):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator))
    return model


def text_batch(module, shakespeare_text, config, seed=0):
    chars = ''.join(sorted(set(shakespeare_text)))
    data = module.encode(shakespeare_text[:20000], chars, 'the text')
    return module.get_batch(data, config['batch_size'], config['block_size'], torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- initial loss and learning
def test_initial_loss_is_log_vocab(script):
    """Zero-initialised heads predict uniformly: the loss is ln(vocab_size) on any input."""
    model, config = make(script)
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(VOCAB, (3, config['block_size']), generator=generator)
    y = torch.randint(VOCAB, (3, config['block_size']), generator=generator)
    logits, loss = model(x, y)
    assert logits.shape == (3, config['block_size'], VOCAB)
    assert abs(loss.item() - math.log(VOCAB)) < 1e-3
    logits_only, none = model(x)
    assert none is None and torch.equal(logits_only, logits)


def test_loss_ignores_minus_one_targets(script):
    """Targets of -1 are not scored (full_loss pads with them)."""
    model, config = make(script)
    randomize_head(model)
    x = torch.randint(VOCAB, (2, config['block_size']), generator=torch.Generator().manual_seed(0))
    y = torch.randint(VOCAB, (2, config['block_size']), generator=torch.Generator().manual_seed(1))
    logits, _ = model(x)
    masked = y.clone()
    masked[:, ::2] = -1
    expected = F.cross_entropy(logits[:, 1::2].reshape(-1, VOCAB), y[:, 1::2].reshape(-1))
    assert torch.allclose(model(x, masked)[1], expected, atol=1e-5)


def batch_bigram_entropy(x, y):
    """The lowest loss any bigram model can reach on this batch: the entropy of next given current, counted."""
    pairs = collections.Counter(zip(x.flatten().tolist(), y.flatten().tolist()))
    firsts = collections.Counter(x.flatten().tolist())
    return -sum(n * math.log(n / firsts[a]) for (a, _), n in pairs.items()) / x.numel()


def overfit(model, x, y, steps, lr):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return model(x, y)[1].item()


def test_bigram_overfits_to_the_batch_bigram_entropy(shakespeare_text):
    """The bigram learns one batch down to (and never below) the batch's own bigram entropy."""
    bigram = load('bigram')
    model, config = make(bigram)
    x, y = text_batch(bigram, shakespeare_text, config)
    floor = batch_bigram_entropy(x, y)
    loss = overfit(model, x, y, steps=200, lr=0.1)
    assert floor - 1e-4 <= loss < floor + 0.1, (loss, floor)


@pytest.mark.parametrize('name', ['mlp', 'gpt'])
def test_mlp_and_gpt_memorise_one_batch(name, shakespeare_text):
    """With context, one fixed batch is memorised: the loss falls from ln(65) = 4.17 to well below 0.5
    (far below the batch's bigram entropy, which only using the context can beat)."""
    module = load(name)
    model, config = make(module)
    x, y = text_batch(module, shakespeare_text, config)
    loss = overfit(model, x, y, steps=200, lr=1e-2)
    assert loss < 0.5 and loss < batch_bigram_entropy(x, y) - 0.5, loss


# ---------------------------------------------------------------- causality
def logits_before_and_after_change(model, T, t):
    """The logits of two random sequences of length T, and of the same with the character at t changed."""
    x = torch.randint(VOCAB, (2, T), generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[:, t] = (x[:, t] + 1) % VOCAB
    with torch.no_grad():
        return model(x)[0], model(changed)[0]


@pytest.mark.parametrize('rope', [True, False])
def test_gpt_knows_the_order_of_its_context(rope):
    """The same characters in another order give another prediction at the last position (one layer: without
    positions, its attention sees the earlier characters as a set), with rotary or learned positions."""
    gpt = load('gpt')
    model, _ = make(gpt, rope=rope, n_layer=1)
    randomize_head(model).eval()
    logits, _ = model(torch.tensor([[1, 2, 3, 4], [2, 1, 3, 4]]))
    assert not torch.allclose(logits[0, -1], logits[1, -1], atol=1e-4)


def test_rotary_attention_depends_on_distance_only():
    """rotate turns q and k by their positions' angles: q . k is the same for any two positions the same distance
    apart, and differs with the distance."""
    gpt = load('gpt')
    model, _ = make(gpt, n_embd=16, n_head=2)  # head size 8
    angles = torch.arange(32)[:, None] * model.frequencies  # (T, hs/2)
    q, k = torch.randn(2, 1, 1, 1, 8, generator=torch.Generator().manual_seed(0))

    def score(i, j):
        at = lambda p: (angles[p:p + 1].cos(), angles[p:p + 1].sin())
        return (gpt.rotate(q, at(i)) * gpt.rotate(k, at(j))).sum().item()
    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-5) == pytest.approx(score(30, 28), abs=1e-5)
    assert abs(score(3, 1) - score(3, 2)) > 1e-3


def test_gpt_starts_as_gpt2_does():
    """Weights of std 0.02, the residual projections 0.02 / sqrt(2 n_layer), biases 0, and the head 0 (loss ln V)."""
    gpt = load('gpt')
    model, _ = make(gpt, n_layer=4, n_head=4, n_embd=64)
    for name, p in model.named_parameters():
        if name.endswith('bias') or name.startswith('lm_head'):
            assert not p.any(), name
        elif p.dim() == 2:
            residual = name.endswith(('attn.proj.weight', 'ffwd.net.2.weight'))
            assert p.std().item() == pytest.approx(0.02 / math.sqrt(8) if residual else 0.02, rel=0.1), name


def test_gpt_attention_weights_drop_out_in_training_only(monkeypatch):
    """dropout reaches the attention weights (flash attention's dropout_p) in training, never in evaluation."""
    gpt = load('gpt')
    model, _ = make(gpt, dropout=0.2)
    seen, attend = [], F.scaled_dot_product_attention
    monkeypatch.setattr(F, 'scaled_dot_product_attention', lambda *args, **kwargs: seen.append(kwargs['dropout_p'])
                        or attend(*args, **kwargs))
    x = torch.tensor([[1, 2, 3, 4]])
    model.train()(x)
    model.eval()(x)
    assert seen == [0.2, 0.2, 0.0, 0.0]  # two layers, then two


def test_mlp_hidden_layers_are_as_its_docstring_says():
    """Each hidden layer is Linear, LayerNorm, GELU, then dropout at the configured rate, which draws in training."""
    mlp = load('mlp')
    model, _ = make(mlp, n_layer=2, dropout=0.5)
    kinds = [type(layer) for layer in model.hidden]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.GELU, nn.Dropout] * 2 and model.hidden[3].p == 0.5
    randomize_head(model).train()
    x = torch.tensor([[1, 2, 3, 4]])
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])


@pytest.mark.parametrize('rope', [True, False])
@pytest.mark.parametrize('t', [0, 5, 15])
def test_gpt_is_causal(t, rope):
    """Changing the character at position t leaves the logits before t exactly as they were and changes
    those from t on (eval mode, dropout 0), with rotary or learned positions."""
    gpt = load('gpt')
    model, config = make(gpt, rope=rope)
    randomize_head(model)
    model.eval()
    T = config['block_size']
    before, after = logits_before_and_after_change(model, T, t)
    assert torch.equal(before[:, :t], after[:, :t])
    for position in range(t, T):
        assert (before[:, position] - after[:, position]).abs().max() > 1e-6, f"position {position} ignores position {t}"


def test_mlp_sees_exactly_block_size_characters():
    """The MLP at position i sees characters i - block_size + 1 .. i: nothing later, nothing earlier."""
    mlp = load('mlp')
    model, config = make(mlp)
    randomize_head(model)
    model.eval()
    T, bs, t = 12, config['block_size'], 3
    before, after = logits_before_and_after_change(model, T, t)
    assert torch.equal(before[:, :t], after[:, :t])
    assert torch.equal(before[:, t + bs:], after[:, t + bs:])
    for position in range(t, t + bs):
        assert (before[:, position] - after[:, position]).abs().max() > 1e-6


def test_mlp_pads_with_the_blank_token():
    """At the start the MLP's missing context is the blank token, not a real character: a sequence's first
    logits equal those of the same character preceded by explicit blanks."""
    mlp = load('mlp')
    model, config = make(mlp)
    randomize_head(model)
    model.eval()
    with torch.no_grad():
        first = model(torch.tensor([[7, 8]]))[0][0, 0]
        padded = model(torch.tensor([[model.blank] * (config['block_size'] - 1) + [7]]))[0][0, -1]
        zero_padded = model(torch.tensor([[0] * (config['block_size'] - 1) + [7]]))[0][0, -1]
    assert torch.allclose(first, padded, atol=1e-6)
    assert not torch.allclose(first, zero_padded, atol=1e-4)


# ---------------------------------------------------------------- generation
def test_generate_past_block_size(script):
    """model.generate goes on past block_size (more than twice over): right shape, prompt kept, valid ids."""
    model, config = make(script)
    randomize_head(model)
    model.eval()
    bs = config['block_size']
    prompt = torch.randint(VOCAB, (2, 3), generator=torch.Generator().manual_seed(0))
    n = 2 * bs + 5
    out = model.generate(prompt, n, 1.0, None, torch.Generator().manual_seed(1))
    assert out.shape == (2, 3 + n) and out.dtype == torch.long
    assert torch.equal(out[:, :3], prompt)
    assert out.min() >= 0 and out.max() < VOCAB
    again = model.generate(prompt, n, 1.0, None, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # the generator alone decides the samples
    long_prompt = torch.randint(VOCAB, (1, 3 * bs), generator=torch.Generator().manual_seed(2))
    out = model.generate(long_prompt, 4, 0.8, 5, torch.Generator().manual_seed(3))
    assert out.shape == (1, 3 * bs + 4)


@pytest.mark.parametrize('block_size', [1, 2, 3])
def test_generate_with_small_block_sizes(script, block_size):
    """Any block_size that check_config accepts can sample past its context (the GPT's cache rebuild
    included: it keeps block_size // 2 characters, which is none at block_size 1)."""
    model, config = make(script, block_size=block_size)
    script.check_config(config)
    model.eval()
    out = model.generate(torch.zeros(1, 1, dtype=torch.long), 3 * block_size + 2, 1.0, None,
                         torch.Generator().manual_seed(0))
    assert out.shape == (1, 3 * block_size + 3)


def gpt_for_greedy(seed=0, rope=True):
    """A GPT in float64 with random weights everywhere, so greedy choices are far from ties."""
    gpt = load('gpt')
    model, config = make(gpt, seed=seed, rope=rope)
    randomize_head(model, seed=seed + 1)
    return gpt, model.double().eval(), config


@torch.no_grad()
def greedy_without_cache(model, idx, new):
    """The lecture's generate at temperature 0: recompute the whole (cropped) context for every character."""
    for _ in range(new):
        logits, _ = model(idx[:, -model.block_size:])
        idx = torch.cat((idx, logits[:, -1].argmax(dim=-1, keepdim=True)), dim=1)
    return idx


@pytest.mark.parametrize('rope', [True, False])
@pytest.mark.parametrize('prompt_len, new', [(1, 15), (5, 11), (10, 6), (16, 0)])
def test_gpt_cached_greedy_matches_uncached(prompt_len, new, rope):
    """Within block_size, greedy decoding with the key/value cache gives the same characters as the
    lecture's generate, which recomputes the whole context for every character."""
    gpt, model, config = gpt_for_greedy(rope=rope)
    assert prompt_len + new <= config['block_size']
    prompt = torch.randint(VOCAB, (3, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
    cached = model.generate(prompt, new, 0.0)
    uncached = greedy_without_cache(model, prompt, new)
    assert cached.shape == (3, prompt_len + new)
    assert torch.equal(cached, uncached)
    if new:
        assert len(set(cached[:, prompt_len:].flatten().tolist())) > 1  # not a degenerate constant answer


def test_gpt_cache_past_block_size(monkeypatch):
    """Past block_size the cached generation goes on: the cache never holds more than block_size positions,
    and each character is what a fresh forward over the cache's characters predicts (rebuilt from the last
    block_size // 2 characters whenever it is full)."""
    gpt, model, config = gpt_for_greedy(seed=3)
    bs = config['block_size']
    lengths = []
    original = gpt.KVCache.append

    def append(self, k, v):
        result = original(self, k, v)
        lengths.append(len(self))
        return result

    monkeypatch.setattr(gpt.KVCache, 'append', append)
    prompt = torch.randint(VOCAB, (2, 4), generator=torch.Generator().manual_seed(0))
    n = 3 * bs + 7
    out = model.generate(prompt, n, 0.0)
    assert out.shape == (2, 4 + n)
    assert max(lengths) == bs
    # the reference: the same windows, each recomputed from scratch
    with torch.no_grad():
        idx, start, window = prompt, None, 0
        for _ in range(n):
            if start is None or window == bs:
                window = min(idx.size(1), bs) if start is None else bs // 2
                start = idx.size(1) - window
            else:
                window += 1
            logits = model(idx[:, start:start + window])[0][:, -1]
            idx = torch.cat((idx, logits.argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(out, idx)


def test_gpt_attention_stays_float32_on_a_cpu_under_bfloat16_autocast():
    """Under bfloat16 autocast on a CPU, attention returns float32 flash attention of its inputs, exactly
    (torch's bfloat16 CPU kernel is several times slower); the model around it still runs in bfloat16."""
    gpt = load('gpt')
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 8, 4, generator=generator).bfloat16() for _ in range(3))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = gpt.attention(q, k, v, causal=True, dropout_p=0.0)
        logits, _ = make(gpt)[0](torch.zeros(1, 4, dtype=torch.long))
    assert y.dtype == torch.float32 and logits.dtype == torch.bfloat16
    assert torch.equal(y, F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True))


def test_gpt_forward_refuses_more_than_block_size():
    """A forward over more positions than block_size is an error, not a silent wrong position embedding."""
    model, config = make(load('gpt'))
    with pytest.raises(ValueError):
        model(torch.zeros(1, config['block_size'] + 1, dtype=torch.long))


# ---------------------------------------------------------------- sample_next
def test_sample_next_temperature_zero_is_argmax(script):
    """temperature 0 is greedy: the argmax of each row, as (B, 1) ids."""
    logits = torch.randn(5, VOCAB, generator=torch.Generator().manual_seed(0))
    ids = script.sample_next(logits, 0, None, None)
    assert ids.shape == (5, 1) and torch.equal(ids[:, 0], logits.argmax(-1))
    assert torch.equal(script.sample_next(logits, 0.0, 3, None)[:, 0], logits.argmax(-1))


def test_sample_next_at_a_tiny_temperature_is_greedy(script):
    """A positive temperature too small for the logits (1e-30, or 1e-300: 0 in float32) samples the likeliest, like
    0: divided by it they overflowed to inf, and multinomial raised after the whole training run."""
    logits = torch.randn(5, VOCAB, generator=torch.Generator().manual_seed(0))
    for temperature, top_k in ((1e-30, None), (1e-300, None), (5e-324, None), (1e-30, 3)):
        ids = script.sample_next(logits, temperature, top_k, torch.Generator().manual_seed(1))
        assert torch.equal(ids[:, 0], logits.argmax(-1))


def test_sample_next_top_k_one_is_argmax(script):
    """top_k=1 leaves only the likeliest character, at any temperature."""
    logits = torch.randn(200, VOCAB, generator=torch.Generator().manual_seed(1))
    for temperature in (0.5, 1.0, 3.0):
        ids = script.sample_next(logits, temperature, 1, torch.Generator().manual_seed(2))
        assert torch.equal(ids[:, 0], logits.argmax(-1))


def test_sample_next_top_k_larger_than_vocab(script):
    """top_k beyond the vocabulary keeps every character: the same draws as top_k=None."""
    logits = torch.randn(50, VOCAB, generator=torch.Generator().manual_seed(3))
    ids = script.sample_next(logits, 1.0, 1000, torch.Generator().manual_seed(4))
    assert ids.shape == (50, 1) and ids.min() >= 0 and ids.max() < VOCAB
    assert torch.equal(ids, script.sample_next(logits, 1.0, None, torch.Generator().manual_seed(4)))


def test_sample_next_top_k_restricts_and_samples(script):
    """top_k=3 draws only among the 3 likeliest, and does draw each of them."""
    row = torch.zeros(VOCAB)
    row[[4, 9, 30]] = torch.tensor([2.0, 1.9, 1.8])
    ids = script.sample_next(row.expand(3000, VOCAB), 1.0, 3, torch.Generator().manual_seed(5))
    assert set(ids.flatten().tolist()) == {4, 9, 30}
    ids = script.sample_next(row.expand(3000, VOCAB), 1.0, None, torch.Generator().manual_seed(5))
    assert len(set(ids.flatten().tolist())) > 3


# ---------------------------------------------------------------- full_loss
class Recorder:
    """A stand-in model for full_loss: records what it is asked to score; its loss is the mean target value."""

    def __init__(self):
        self.calls = []

    def eval(self):
        pass

    def train(self):
        pass

    def parameters(self):  # where full_loss sends each batch
        return iter([torch.zeros(())])

    def __call__(self, x, y):
        self.calls.append((x.clone(), y.clone()))
        return None, y[y != -1].double().mean()


@pytest.mark.parametrize('length', [2, 17, 18, 203, 257, 1000])
@pytest.mark.parametrize('batch_size', [1, 4])
def test_full_loss_scores_every_character_once_with_context(script, length, batch_size):
    """full_loss with the script's windows scores each of data[1:] exactly once, from its own predecessor,
    with as much context as the window allows (the model's whole context for the MLP)."""
    config = dict(script.DEFAULTS, **TINY[script.SCRIPT[:-3]])
    window, overlap = script.full_val_windows(config)
    assert 0 <= overlap < window
    if length - 1 <= overlap:
        pytest.skip('data shorter than the overlap')
    data = torch.arange(1, length + 1)  # the value gives the position
    recorder = Recorder()
    result = script.full_loss(recorder, data, window, overlap, batch_size, contextlib.nullcontext())
    scored = []
    for x, y in recorder.calls:
        assert x.shape == y.shape and x.shape[1] == window and x.shape[0] <= batch_size
        for row_x, row_y in zip(x.tolist(), y.tolist()):
            for j, target in enumerate(row_y):
                if target == -1:
                    continue
                scored.append(target)
                assert row_x[j] == target - 1  # predicted from the character before it
                context = row_x[max(0, j - overlap):j + 1]
                assert context == list(range(target - len(context), target))  # real, consecutive characters
                assert len(context) == overlap + 1 or context[0] == 1  # full context, or from the text's start
    assert sorted(scored) == list(range(2, length + 1))
    assert result == pytest.approx(sum(range(2, length + 1)) / (length - 1))


def test_full_loss_bigram_exact():
    """Bigram: full_loss is the mean of -log softmax(table[data[i]])[data[i+1]] over the whole data."""
    bigram = load('bigram')
    model, config = make(bigram)
    randomize_head(model)  # a table that is not uniform
    data = torch.randint(VOCAB, (203,), generator=torch.Generator().manual_seed(0))
    window, overlap = bigram.full_val_windows(config)
    assert 202 % window
    direct = F.cross_entropy(model.table.weight[data[:-1]], data[1:]).item()
    for batch_size in (1, 3, 64):
        assert bigram.full_loss(model, data, window, overlap, batch_size, contextlib.nullcontext()) == \
            pytest.approx(direct, abs=1e-5)


def test_full_loss_mlp_exact():
    """MLP: full_loss equals one pass over the whole sequence, which gives every position its full context
    (the blank token before the start), although it works in windows."""
    mlp = load('mlp')
    model, config = make(mlp)
    randomize_head(model)
    model.eval()
    data = torch.randint(VOCAB, (302,), generator=torch.Generator().manual_seed(0))  # 301 = 7 * 43 to predict
    window, overlap = mlp.full_val_windows(config)
    with torch.no_grad():
        direct = model(data[None, :-1], data[None, 1:])[1].item()
    for batch_size in (1, 4):
        assert mlp.full_loss(model, data, window, overlap, batch_size, contextlib.nullcontext()) == \
            pytest.approx(direct, abs=1e-5)
    # the overlap matters: without it the later windows lose their first characters' context
    assert abs(mlp.full_loss(model, data, window, 0, 4, contextlib.nullcontext()) - direct) > 1e-3


def test_full_loss_gpt_exact():
    """GPT: full_loss is the per-character mean over consecutive block_size windows of the data."""
    gpt = load('gpt')
    model, config = make(gpt)
    randomize_head(model)
    model.eval()
    data = torch.randint(VOCAB, (150,), generator=torch.Generator().manual_seed(0))
    window, overlap = gpt.full_val_windows(config)
    total = 0.0
    with torch.no_grad():
        inputs, targets = data[:-1], data[1:]
        for start in range(0, 149, window):
            x, y = inputs[start:start + window], targets[start:start + window]
            total += F.cross_entropy(model(x[None])[0][0], y, reduction='sum').item()
    result = gpt.full_loss(model, data, window, overlap, 2, contextlib.nullcontext())
    assert result == pytest.approx(total / 149, abs=1e-5)


# ---------------------------------------------------------------- learning rate and optimizer
SCHEDULE = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=110)


def test_learning_rate_warmup(script):
    """Warmup rises linearly from above 0 to learning_rate, reached at step warmup_iters."""
    lrs = [script.learning_rate_at(step, SCHEDULE) for step in range(11)]
    assert 0 < lrs[0] < lrs[1]
    steps = [b - a for a, b in zip(lrs, lrs[1:])]
    assert all(s > 0 for s in steps) and max(steps) - min(steps) < 1e-12
    assert all(lr < SCHEDULE['learning_rate'] for lr in lrs[:10])
    assert lrs[10] == pytest.approx(SCHEDULE['learning_rate'])
    assert lrs[9] > 0.85 * SCHEDULE['learning_rate']


def test_learning_rate_cosine_then_floor(script):
    """After warmup: cosine down to min_lr at lr_decay_iters (halfway at the midpoint), then min_lr for good."""
    lrs = [script.learning_rate_at(step, SCHEDULE) for step in range(10, 111)]
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert lrs[50] == pytest.approx((SCHEDULE['learning_rate'] + SCHEDULE['min_lr']) / 2)
    assert script.learning_rate_at(109, SCHEDULE) > SCHEDULE['min_lr']
    for step in (110, 111, 500, 10 ** 6):
        assert script.learning_rate_at(step, SCHEDULE) == pytest.approx(SCHEDULE['min_lr'])


def test_learning_rate_without_warmup(script):
    """warmup_iters = 0 starts at learning_rate; warmup_iters = lr_decay_iters works (no division by zero)."""
    assert script.learning_rate_at(0, dict(SCHEDULE, warmup_iters=0)) == pytest.approx(1e-3)
    config = dict(SCHEDULE, warmup_iters=50, lr_decay_iters=50)
    assert script.learning_rate_at(49, config) < 1e-3
    assert script.learning_rate_at(50, config) == pytest.approx(1e-4)


def test_make_optimizer_decays_only_linear_weights(script):
    """AdamW weight decay applies to the weight matrices of Linear layers only; embeddings, biases and
    LayerNorms are in a group without decay; every parameter is in exactly one group."""
    model, config = make(script)
    config = dict(config, weight_decay=0.1, learning_rate=3e-3, beta1=0.8, beta2=0.95)
    optimizer = script.make_optimizer(model, config, torch.device('cpu'))
    assert isinstance(optimizer, torch.optim.AdamW)
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    grouped = [id(p) for group in optimizer.param_groups for p in group['params']]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    for group in optimizer.param_groups:
        assert group['lr'] == 3e-3 and group['betas'] == (0.8, 0.95)
        ids = {id(p) for p in group['params']}
        if group['weight_decay'] == 0.1:
            assert ids == linear_weights and all(p.dim() == 2 for p in group['params'])
        else:
            assert group['weight_decay'] == 0.0 and not ids & linear_weights
    no_decay = {id(p) for g in optimizer.param_groups if g['weight_decay'] == 0.0 for p in g['params']}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Embedding, nn.LayerNorm)):
            assert all(id(p) in no_decay for p in module.parameters()), name
        if isinstance(module, nn.Linear) and module.bias is not None:
            assert id(module.bias) in no_decay, name
    if linear_weights:
        assert any(g['weight_decay'] == 0.1 for g in optimizer.param_groups)
    else:  # the bigram: a table only
        assert [g['weight_decay'] for g in optimizer.param_groups] == [0.0]


def test_make_optimizer_gpt_groups_by_name():
    """The GPT's groups, by parameter name: the matrices decay, the rest do not."""
    gpt = load('gpt')
    model, config = make(gpt, rope=False)  # learned positions: an embedding table that must not decay
    optimizer = gpt.make_optimizer(model, dict(config, weight_decay=0.1), torch.device('cpu'))
    decay = {id(p) for g in optimizer.param_groups if g['weight_decay'] > 0 for p in g['params']}
    names = {name for name, p in model.named_parameters() if id(p) in decay}
    assert {'lm_head.weight', 'blocks.0.attn.qkv.weight', 'blocks.0.attn.proj.weight', 'blocks.1.ffwd.net.0.weight',
            'blocks.1.ffwd.net.2.weight'} <= names
    assert not names & {'token_embedding.weight', 'position_embedding.weight', 'ln_f.weight', 'ln_f.bias',
                        'blocks.0.ln1.weight', 'blocks.0.attn.proj.bias', 'lm_head.bias'}


@pytest.mark.parametrize('name', SCRIPTS)
def test_model_keys_are_hyperparameters(name):
    """MODEL_KEYS (which a checkpoint fixes) are hyperparameters of the script."""
    module = load(name)
    assert set(module.MODEL_KEYS) <= set(module.DEFAULTS)
