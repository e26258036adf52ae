"""Starting from a trained model (init_from: a new run on another text, the vocabulary mapped by character) and
scoring any text with one (eval_only: every character once, as val_loss_full, into eval.json)."""
import contextlib
import hashlib
import io
import json
import math
import os
import types

import pytest
import torch

from conftest import TINY, load, run_script, tiny_config


def second_text(text):
    """Text of the same kind with two new characters, one of which sorts before most old ones (so every index
    after it moves), and without the old lowercase 'a' and 'e' (which the new vocabulary must carry)."""
    return text.replace('a', '%').replace('e', '\u00e9')


def run_main(module, *args):
    """main as the command line calls it: the overrides, and the names they set."""
    return module.main(*module.parse_overrides(list(args), module.DEFAULTS))


def digests(folder):
    result = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), 'rb') as f:
            result[name] = hashlib.sha256(f.read()).hexdigest()
    return result


# ------------------------------------------------------------------------------ init_from
def test_vocabulary_moves_by_character(script):
    """A checkpoint's weights placed into a model for a larger vocabulary: for any context of old characters the
    logits of the old characters are the checkpoint model's, in their old order (embedding rows, head rows, the
    bigram's columns and the MLP's blank all moved); a shared character's embedding row is the checkpoint's row;
    the rows of added characters are those of a fresh model."""
    config = dict(script.DEFAULTS, **TINY[script.SCRIPT[:-3]], dropout=0.0)
    old = 'abcdef \n'
    chars = ''.join(sorted(set(old) | set('%\u00e9')))
    torch.manual_seed(0)
    trained = script.create_model(config, len(old)).eval()
    with torch.no_grad():
        for p in trained.parameters():
            p.normal_()
    checkpoint = {'chars': ''.join(sorted(old)), 'model': trained.state_dict()}
    torch.manual_seed(1)
    model = script.create_model(config, len(chars)).eval()
    fresh = {name: value.clone() for name, value in model.state_dict().items()}
    model.load_state_dict(script.placed_by_character(model, checkpoint, chars))

    text = 'bad cafe\nface b'
    x_old = torch.tensor([[checkpoint['chars'].index(c) for c in text]])
    x_new = torch.tensor([[chars.index(c) for c in text]])
    places = [chars.index(c) for c in checkpoint['chars']]
    assert places != list(range(len(places)))  # '%' sorts before the letters: the indices did move
    with torch.no_grad():
        assert torch.allclose(model(x_new)[0][..., places], trained(x_old)[0], atol=1e-5)
    embedding = next(iter(script.VOCAB_AXES))  # the first: the embedding (the bigram's table)
    rows = model.state_dict()[embedding]
    if script.VOCAB_AXES[embedding] == (0, 1):
        rows = rows[:, places]  # the bigram's row of a character holds a logit per character: the old ones
    for i, c in enumerate(checkpoint['chars']):
        assert torch.equal(rows[chars.index(c)], checkpoint['model'][embedding][i]), c
    for name in script.VOCAB_AXES:
        for c in '%\u00e9':
            assert torch.equal(model.state_dict()[name][chars.index(c)], fresh[name][chars.index(c)]), (name, c)


@pytest.fixture(scope='module')
def base(tmp_path_factory, shakespeare_text):
    """A tiny gpt.py trained for 200 steps on 20,000 characters of the text (in this process)."""
    tmp = tmp_path_factory.mktemp('base')
    text_file = tmp / 'text.txt'
    text_file.write_text(shakespeare_text[:20000], encoding='utf-8')
    gpt = load('gpt')
    gpt.main(tiny_config(gpt, tmp, str(text_file), max_iters=200, lr_decay_iters=200, eval_interval=100,
                         learning_rate=1e-2))
    return tmp


@pytest.fixture(scope='module')
def fine_tuned(base, shakespeare_text):
    """30 steps on a second text with new characters, from the base model's weights and from scratch."""
    gpt = load('gpt')
    text_file = base / 'second.txt'
    text_file.write_text(second_text(shakespeare_text[20000:40000]), encoding='utf-8')
    start = str(base / 'out' / 'ckpt.pt')
    settings = dict(max_iters=30, lr_decay_iters=30, learning_rate=1e-2, max_new_tokens=200)
    with contextlib.redirect_stdout(io.StringIO()) as output:
        tuned = gpt.main(*gpt.parse_overrides([f'--init_from={start}'],
                                              tiny_config(gpt, base / 'tuned', str(text_file), **settings)))
    fresh = gpt.main(tiny_config(gpt, base / 'fresh', str(text_file), **settings))
    return types.SimpleNamespace(tuned=tuned, fresh=fresh, output=output.getvalue(), start=start,
                                 out_dir=base / 'tuned' / 'out', text=second_text(shakespeare_text[20000:40000]))


def test_fine_tuning_beats_a_fresh_start(base, fine_tuned):
    """30 steps from the base model's weights on the second text reach a lower val_loss_full there than 30 steps
    from scratch, and a lower val loss at step 0 already."""
    assert fine_tuned.tuned['val_loss_full'] < fine_tuned.fresh['val_loss_full'] - 0.25  # 2.84 vs 3.22 (3.10 by index)
    first_val = lambda run: json.loads(open(os.path.join(base, run, 'out', 'metrics.jsonl')).readline())['val_loss']
    assert first_val('tuned') < first_val('fresh') - 0.1  # 3.83 against 4.06 (4.29 if mapped by index)


def test_fine_tuned_run_says_where_it_started(fine_tuned, shakespeare_text):
    """The run says how the vocabulary was mapped, starts at step 0, records init_from (summary.json, sample
    header), keeps the old characters in its vocabulary and writes the new ones."""
    old, new = set(shakespeare_text[:20000]), set(fine_tuned.text)
    assert (f"vocabulary by character: {len(new & old)} kept, 2 added (new rows), {len(old - new)} carried"
            in fine_tuned.output), fine_tuned.output
    assert f'starting from {fine_tuned.start}, step 200' in fine_tuned.output and 'resumed' not in fine_tuned.output
    assert fine_tuned.tuned['config']['init_from'] == fine_tuned.start
    with open(fine_tuned.tuned['samples_path'], encoding='utf-8') as f:
        samples = f.read()
    assert f"\ninit_from = {fine_tuned.start!r}\n" in samples
    body = samples.split('-------- sample 1')[1]
    assert '%' in body and '\u00e9' in body
    ckpt = torch.load(fine_tuned.out_dir / 'ckpt.pt', weights_only=True)
    assert ckpt['chars'] == ''.join(sorted(old | new)) and ckpt['step'] == 30


def test_fine_tuned_run_resumes_and_samples(fine_tuned):
    """A fine-tuned run is a run like any other: it resumes on its text (whose vocabulary is a part of the
    checkpoint's), and sample_only rewrites its samples, init_from line included, byte for byte."""
    gpt = load('gpt')
    summary = run_main(gpt, f'--out_dir={fine_tuned.out_dir}', '--resume=true', '--max_iters=40')
    assert summary['iters'] == 40 and summary['config']['init_from'] == fine_tuned.start
    with open(summary['samples_path'], 'rb') as f:
        written = f.read()
    os.remove(summary['samples_path'])
    run_main(gpt, f'--out_dir={fine_tuned.out_dir}', '--sample_only=true')
    with open(summary['samples_path'], 'rb') as f:
        assert f.read() == written


def test_init_from_refusals(base, tmp_path, text_file):
    """A model-shape override that contradicts the checkpoint, resume with init_from, a checkpoint of another
    script, and out_dir's own checkpoint (the new run would move it aside): each a UsageError naming the problem."""
    start = f"--init_from={base / 'out' / 'ckpt.pt'}"
    gpt, mlp = load('gpt'), load('mlp')
    with pytest.raises(gpt.UsageError, match='n_layer = 3 here, but the checkpoint was trained with n_layer = 2'):
        gpt.main(*gpt.parse_overrides([start, '--n_layer=3'], tiny_config(gpt, tmp_path, text_file)))
    with pytest.raises(gpt.UsageError, match='resume and init_from exclude each other'):
        gpt.main(*gpt.parse_overrides([start, '--resume=true'], tiny_config(gpt, tmp_path, text_file)))
    with pytest.raises(mlp.UsageError, match='not a checkpoint of mlp.py'):
        mlp.main(*mlp.parse_overrides([start], tiny_config(mlp, tmp_path, text_file)))
    with pytest.raises(gpt.UsageError, match="this run's own checkpoint: give it another --out_dir"):
        gpt.main(*gpt.parse_overrides([start, f"--out_dir={base / 'out'}"], tiny_config(gpt, tmp_path, text_file)))
    assert not os.path.exists(tmp_path / 'out')


# ------------------------------------------------------------------------------ eval_only
@pytest.fixture(params=['bigram', 'mlp', 'gpt'])
def trained(request, tmp_path, text_file):
    """A tiny run of each script (in this process): its module, out_dir and summary."""
    module = load(request.param)
    return module, str(tmp_path / 'out'), module.main(tiny_config(module, tmp_path, text_file))


def test_eval_only_reproduces_val_loss_full(trained, text_file):
    """--eval_only=true --eval_split=val on the training text gives the run's own val_loss_full (to every digit
    here: the same windows and batches); the whole file scores every character after the first; eval.json holds
    the file's name and checksum; the run's other files are untouched."""
    module, out_dir, summary = trained
    before = digests(out_dir)
    figures = run_main(module, f'--out_dir={out_dir}', '--eval_only=true', '--eval_split=val', f'--input_path={text_file}')
    assert figures['loss'] == summary['val_loss_full']
    assert digests(out_dir) == dict(before, **{'eval.json': digests(out_dir)['eval.json']})
    with open(os.path.join(out_dir, 'eval.json')) as f:
        assert json.load(f) == figures
    with open(text_file, 'rb') as f:
        raw = f.read()
    assert figures['sha256'] == hashlib.sha256(raw).hexdigest() and figures['input_path'] == text_file
    length = len(raw.decode())
    assert figures['characters'] == length - int(0.9 * length) - 1 and figures['unknown'] == 0

    whole = run_main(module, f'--out_dir={out_dir}', '--eval_only=true', f'--input_path={text_file}')
    assert whole['characters'] == length - 1
    assert whole['bpc'] == pytest.approx(whole['loss'] / math.log(2))
    assert whole['perplexity'] == pytest.approx(math.exp(whole['loss']))


def test_characters_outside_the_vocabulary(tmp_path, text_file):
    """By default they are an error that lists them; --unknown=skip leaves them out, counts them apart and scores
    the rest (the figures are those of the text without them)."""
    gpt = load('gpt')
    gpt.main(tiny_config(gpt, tmp_path, text_file))
    with open(text_file, encoding='utf-8') as f:
        text = f.read()
    other = tmp_path / 'other.txt'
    other.write_text(second_text(text), encoding='utf-8')
    args = [f"--out_dir={tmp_path / 'out'}", '--eval_only=true', f'--input_path={other}']
    with pytest.raises(gpt.UsageError, match="'%' '\u00e9'.*--unknown=skip"):
        run_main(gpt, *args)
    skipped = run_main(gpt, *args, '--unknown=skip')
    assert skipped['unknown'] == text.count('a') + text.count('e') and skipped['unknown_chars'] == '%\u00e9'
    without = tmp_path / 'without.txt'
    without.write_text(text.replace('a', '').replace('e', ''), encoding='utf-8')
    plain = run_main(gpt, f"--out_dir={tmp_path / 'out'}", '--eval_only=true', f'--input_path={without}')
    assert (skipped['loss'], skipped['characters'], skipped['bpb']) == (plain['loss'], plain['characters'], plain['bpb'])


def test_eval_only_on_the_command_line(tmp_path, text_file):
    """As a person runs it: one line with the five figures, the same as eval.json; a text from another checkpoint
    (--init_from) scores into out_dir; a bad eval_split is an error naming it."""
    gpt = load('gpt')
    gpt.main(tiny_config(gpt, tmp_path / 'run', text_file))
    start = str(tmp_path / 'run' / 'out' / 'ckpt.pt')
    result = run_script('gpt', [f'--init_from={start}', '--eval_only=true', f'--input_path={text_file}',
                                f"--out_dir={tmp_path / 'scores'}"])
    assert result.returncode == 0, result.stderr
    with open(tmp_path / 'scores' / 'eval.json') as f:
        figures = json.load(f)
    assert sorted(os.listdir(tmp_path / 'scores')) == ['.lock', 'eval.json'] and figures['checkpoint'] == start
    line = [line for line in result.stdout.splitlines() if 'nats per character' in line]
    assert len(line) == 1 and (f"{figures['loss']:.4f} nats per character, {figures['bpc']:.4f} bits per character, "
                               f"{figures['bpb']:.4f} bits per byte, perplexity {figures['perplexity']:.3f}, "
                               f"{figures['characters']:,} characters scored") in line[0]
    with pytest.raises(gpt.UsageError, match="eval_split must be all or val, got 'train'"):
        run_main(gpt, f'--init_from={start}', '--eval_only=true', '--eval_split=train')
