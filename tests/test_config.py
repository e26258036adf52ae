"""Override parsing (--name=value and config files) and check_config."""
import pytest
import torch

from conftest import load


def parse(module, *args):
    return module.parse_overrides(list(args), module.DEFAULTS)


def usage_error(module, *args):
    """The UsageError message parse_overrides raises for args."""
    with pytest.raises(module.UsageError) as info:
        parse(module, *args)
    return str(info.value)


# ---------------------------------------------------------------- values edited at the top of the script
def top_edited(module, monkeypatch, capsys, name, value, *args):
    """What run_command_line says when the value of name at the top of the script is edited to value; the input_path
    it is given is missing, so a run that gets past the hyperparameters stops right after with that error."""
    monkeypatch.setattr(module, name, value)  # as the edited file defines it, and DEFAULTS as gathered from it:
    edited = dict(module.DEFAULTS, **{name: value})
    monkeypatch.setattr(module, 'DEFAULTS', {key: v for key, v in edited.items() if not isinstance(v, tuple)})
    assert module.run_command_line(['--input_path=no-such-file.txt', *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.parametrize('name, value, says', [
    ('max_iters', 5e3, 'max_iters must be an integer, got 5000.0'),
    ('learning_rate', (3e-4,), 'learning_rate must be a finite number, got (0.0003,)'),  # a stray comma
    ('eval_interval', '500', "eval_interval must be an integer, got '500'"),
    ('resume', 'False', "resume must be true or false, got 'False'"),
    ('top_k', 5.0, 'top_k must be an integer or none, got 5.0')])
def test_a_wrong_type_edited_at_the_top_is_one_line(script, monkeypatch, capsys, name, value, says):
    """The types come from the script's TYPES, not from the values as edited: one line names the value."""
    assert top_edited(script, monkeypatch, capsys, name, value) == f"{script.SCRIPT}: error: at the top of " \
                                                                    f"{script.SCRIPT}: {says}"


def test_an_integer_edited_where_a_float_goes_is_a_float(script, monkeypatch, capsys):
    """temperature = 1 at the top still takes --temperature=0.8 (it used to refuse it as not an integer)."""
    line = top_edited(script, monkeypatch, capsys, 'temperature', 1, '--temperature=0.8')
    assert 'cannot read input_path no-such-file.txt' in line
    assert script.DEFAULTS['temperature'] == 1.0 and type(script.DEFAULTS['temperature']) is float


def test_a_model_hyperparameter_edited_to_the_wrong_type(monkeypatch, capsys):
    gpt, mlp = load('gpt'), load('mlp')
    assert 'n_layer must be an integer, got 4.0' in top_edited(gpt, monkeypatch, capsys, 'n_layer', 4.0)
    assert 'cannot read input_path' in top_edited(mlp, monkeypatch, capsys, 'dropout', 0, '--dropout=0.1')


# ---------------------------------------------------------------- good --name=value cases
def test_no_args_gives_the_defaults(script):
    """Nothing asked for: the defaults, a fresh dict, nothing overridden."""
    config, overridden = parse(script)
    assert config == script.DEFAULTS and config is not script.DEFAULTS
    assert overridden == []


def test_values_take_the_type_of_the_default(script):
    """--learning_rate=1 is the float 1.0; bools, None and ints are parsed; strings stay strings."""
    config, overridden = parse(script, '--learning_rate=1', '--resume=true', '--top_k=5', '--prompt=ROMEO:',
                               '--max_iters=7', '--device=cpu')
    assert config['learning_rate'] == 1.0 and type(config['learning_rate']) is float
    assert config['resume'] is True
    assert config['top_k'] == 5 and type(config['top_k']) is int
    assert config['prompt'] == 'ROMEO:'
    assert config['max_iters'] == 7 and type(config['max_iters']) is int
    assert config['device'] == 'cpu'
    assert overridden == ['learning_rate', 'resume', 'top_k', 'prompt', 'max_iters', 'device']
    assert script.DEFAULTS['resume'] is False and script.DEFAULTS['top_k'] is None  # the defaults are untouched


@pytest.mark.parametrize('text, value', [('true', True), ('True', True), ('TRUE', True), ('false', False),
                                         ('False', False)])
def test_bool_words(script, text, value):
    """true/false in any case are bools."""
    assert parse(script, f'--resume={text}')[0]['resume'] is value


def test_top_k_none_and_int(script):
    """top_k (default None) takes none or an integer."""
    assert parse(script, '--top_k=5', '--top_k=none')[0]['top_k'] is None
    assert parse(script, '--top_k=none', '--top_k=5')[0]['top_k'] == 5


def test_string_values_are_taken_verbatim(script):
    """A string setting keeps its text as given: no literal parsing, '=' inside the value kept."""
    config, _ = parse(script, '--prompt=ROMEO:', '--out_dir=a=b', '--input_path=1.5')
    assert config['prompt'] == 'ROMEO:' and config['out_dir'] == 'a=b' and config['input_path'] == '1.5'


def test_negative_and_exponent_numbers(script):
    """Python number literals work for numeric settings."""
    config, _ = parse(script, '--learning_rate=3e-4', '--temperature=0.5', '--seed=-3')
    assert config['learning_rate'] == 3e-4 and config['temperature'] == 0.5 and config['seed'] == -3


# ---------------------------------------------------------------- config files
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return str(path)


def test_config_file_then_override_in_order(script, tmp_path):
    """A config file's `name = value` lines apply (comments ignored), and later arguments win."""
    path = write(tmp_path, 'cfg.py', "# a comment\n\nmax_iters = 7   # trailing comment\nlearning_rate = 2\n"
                                     "prompt = 'ROMEO:'\ntop_k = None\nresume = True\n")
    config, overridden = parse(script, path)
    assert (config['max_iters'], config['learning_rate'], config['prompt'], config['top_k'], config['resume']) == \
        (7, 2.0, 'ROMEO:', None, True)
    assert type(config['learning_rate']) is float
    assert overridden == ['max_iters', 'learning_rate', 'prompt', 'top_k', 'resume']
    assert parse(script, path, '--max_iters=9')[0]['max_iters'] == 9
    assert parse(script, '--max_iters=9', path)[0]['max_iters'] == 7


def test_config_file_values_are_type_checked(script, tmp_path):
    """A config file is checked like the command line: types and names."""
    message = usage_error(script, write(tmp_path, 'bad_type.py', "max_iters = 1.5\n"))
    assert 'max_iters' in message and '1.5' in message
    message = usage_error(script, write(tmp_path, 'bad_name.py', "learning_rat = 0.1\n"))
    assert "learning_rat" in message and 'learning_rate' in message


# ---------------------------------------------------------------- bad cases
def test_unknown_name_suggests_the_close_one(script):
    """A typo'd name is refused and the likely intended name suggested."""
    message = usage_error(script, '--learning_rat=1')
    assert "unknown hyperparameter 'learning_rat'" in message
    assert 'did you mean learning_rate' in message
    assert 'did you mean max_iters' in usage_error(script, '--MAX_ITERS=3')  # the case slipped


def test_unknown_name_without_near_miss(script):
    """A name like nothing known is refused without a suggestion."""
    message = usage_error(script, '--zzqqxx=1')
    assert 'zzqqxx' in message and 'did you mean' not in message


@pytest.mark.parametrize('arg, words', [
    ('--max_iters=1.5', ['max_iters', 'an integer', '1.5']),
    ('--max_iters=abc', ['max_iters', 'an integer', 'abc']),
    ('--max_iters=true', ['max_iters', 'an integer']),
    ('--resume=2', ['resume', 'true or false', '2']),
    ('--resume=yes', ['resume', 'true or false']),
    ('--learning_rate=fast', ['learning_rate', 'a finite number', 'fast']),
    ('--time_budget=1e999', ['time_budget', 'a finite number', 'inf']),
    ('--top_k=1.5', ['top_k', 'an integer or none']),
])
def test_wrong_type(script, arg, words):
    """A value of the wrong type is refused, naming the key, what was expected and what was given."""
    message = usage_error(script, arg)
    for word in words:
        assert word in message


def test_missing_value(script):
    """--max_iters without =value is refused (not taken as a config file name)."""
    message = usage_error(script, '--max_iters')
    assert '--max_iters' in message and 'expected --name=value' in message


def test_missing_config_file(script, tmp_path):
    """A config file that is not there is a UsageError naming it."""
    path = str(tmp_path / 'nope.py')
    message = usage_error(script, path)
    assert path in message and 'cannot read config file' in message


def test_config_file_syntax_error(script, tmp_path):
    """A config file that is not Python is refused, naming the file and Python's complaint with its line."""
    path = write(tmp_path, 'broken.py', "max_iters = = 3\n")
    message = usage_error(script, path)
    assert path in message and 'cannot read config file' in message and 'invalid syntax' in message
    assert 'line 1' in message


@pytest.mark.parametrize('value', ['1 + os.getpid()', 'int(3)', "open('x').read()", 'max_iters', '[i for i in range(3)]'])
def test_config_file_non_literal_value(script, tmp_path, value):
    """Only plain values are accepted in a config file: no expressions, calls or names."""
    path = write(tmp_path, 'expr.py', f"max_iters = {value}\n")
    message = usage_error(script, path)
    assert path in message and 'line 1' in message and 'plain value' in message and f'max_iters = {value}' in message


@pytest.mark.parametrize('text', [
    "import pathlib\npathlib.Path({marker!r}).touch()\n",
    "from pathlib import Path\nPath({marker!r}).touch()\n",
    "max_iters = 3\nexec(\"open({marker!r}, 'w').close()\")\n",
    "max_iters = __import__('pathlib').Path({marker!r}).touch()\n",
    "if True:\n    open({marker!r}, 'w').close()\n",
    "x, y = 1, open({marker!r}, 'w').close()\n",
])
def test_config_file_code_is_rejected_not_run(script, tmp_path, text):
    """A config file is read as data: statements other than `name = value` are refused and never executed."""
    marker = tmp_path / 'marker'
    path = write(tmp_path, 'evil.py', text.format(marker=str(marker)))
    message = usage_error(script, path)
    assert path in message and '\n' not in message  # one line, even for a block
    assert not marker.exists(), 'the config file was executed'


def test_config_file_import_message(script, tmp_path):
    """An import statement is refused with the line and what was expected."""
    path = write(tmp_path, 'imp.py', "max_iters = 3\nimport os\n")
    message = usage_error(script, path)
    assert 'line 2' in message and 'expected `name = value`' in message and 'import os' in message


def test_config_file_that_is_a_directory(script, tmp_path):
    """A directory given as a config file is a UsageError, not a traceback."""
    message = usage_error(script, str(tmp_path))
    assert 'cannot read config file' in message


# ---------------------------------------------------------------- check_config
def check_error(module, **changes):
    """The UsageError message check_config raises for the defaults with changes."""
    config = dict(module.DEFAULTS, **changes)
    with pytest.raises(module.UsageError) as info:
        module.check_config(config)
    return str(info.value)


def test_defaults_pass_check_config(script):
    """The defaults themselves are a valid config (so each failure below is due to the one change)."""
    script.check_config(dict(script.DEFAULTS))
    script.check_config(dict(script.DEFAULTS, temperature=0.0, top_k=1, dtype='float32', resume=True))


POSITIVE = ('batch_size', 'block_size', 'max_iters', 'n_layer', 'n_embd', 'n_head', 'n_hidden', 'eval_iters',
            'eval_interval', 'log_interval', 'learning_rate', 'num_samples', 'gradient_accumulation_steps')


@pytest.mark.parametrize('value', [0, -1])
def test_non_positive_sizes(script, value):
    """Sizes and counts must be positive (each that the script has); the message names the key."""
    names = [name for name in POSITIVE if name in script.DEFAULTS]
    assert {'batch_size', 'block_size', 'max_iters'} <= set(names)
    for name in names:
        message = check_error(script, **{name: value})
        assert name in message and 'positive' in message, (name, message)


def test_every_script_checks_its_core_sizes():
    """batch_size, block_size and max_iters exist (and so are checked) in every script; n_layer/n_embd where models
    have layers."""
    for name in ('bigram', 'mlp', 'gpt'):
        assert {'batch_size', 'block_size', 'max_iters'} <= set(load(name).DEFAULTS)
    for name in ('mlp', 'gpt'):
        assert {'n_layer', 'n_embd'} <= set(load(name).DEFAULTS)


def test_n_embd_divisible_by_n_head():
    """gpt: n_embd must split evenly into heads."""
    gpt = load('gpt')
    message = check_error(gpt, n_embd=10, n_head=3)
    assert 'n_embd' in message and 'n_head' in message and 'divisible' in message
    gpt.check_config(dict(gpt.DEFAULTS, n_embd=12, n_head=3, rope=False))


def test_rotary_positions_need_an_even_head_size():
    """rope turns pairs of a head's channels: an odd head size is refused (it was a traceback in the first step)."""
    gpt = load('gpt')
    assert 'rope needs an even head size, n_embd / n_head = 3' in check_error(gpt, n_embd=12, n_head=4)
    gpt.check_config(dict(gpt.DEFAULTS, n_embd=12, n_head=4, rope=False))


@pytest.mark.parametrize('name', ['mlp', 'gpt'])
@pytest.mark.parametrize('value', [-0.1, 1.0, 1.5])
def test_dropout_range(name, value):
    """dropout must be in [0, 1)."""
    module = load(name)
    message = check_error(module, dropout=value)
    assert 'dropout' in message and '[0, 1)' in message
    module.check_config(dict(module.DEFAULTS, dropout=0.0))


@pytest.mark.parametrize('name', ['beta1', 'beta2'])
def test_betas_range(script, name):
    """AdamW betas must be in [0, 1)."""
    assert name in check_error(script, **{name: 1.0})


def test_negative_temperature(script):
    """temperature may be 0 (greedy) but not negative."""
    message = check_error(script, temperature=-0.5)
    assert 'temperature' in message and 'negative' in message


@pytest.mark.parametrize('name', ['min_lr', 'warmup_iters', 'weight_decay', 'grad_clip', 'max_new_tokens'])
def test_other_non_negative_settings(script, name):
    """Settings that may be zero but not negative."""
    assert name in check_error(script, **{name: -1})
    script.check_config(dict(script.DEFAULTS, **{name: 0}))


@pytest.mark.parametrize('value', [0, -3])
def test_top_k_at_least_one(script, value):
    """top_k must be at least 1 (or None)."""
    message = check_error(script, top_k=value)
    assert 'top_k' in message


@pytest.mark.parametrize('value', ['float64', 'fp16', 'bf16', ''])
def test_bad_dtype(script, value):
    """Only auto, float32, bfloat16 and float16 are dtypes."""
    message = check_error(script, dtype=value)
    assert 'dtype' in message


@pytest.mark.parametrize('amx, expected', [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_a_cpu_is_bfloat16_only_with_amx(script, monkeypatch, amx, expected):
    """'auto' on a CPU: bfloat16 where it has AMX matrix units, float32 elsewhere; a named dtype is kept."""
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: amx, raising=False)
    cpu = torch.device('cpu')
    assert script.pick_dtype('auto', cpu) == expected
    assert script.pick_dtype('float32', cpu) == torch.float32 and script.pick_dtype('bfloat16', cpu) == torch.bfloat16


def test_a_torch_without_the_amx_check_counts_as_no_amx(script, monkeypatch):
    """The AMX check is private to torch: where it is missing, 'auto' falls back to float32 on a CPU."""
    monkeypatch.delattr(torch.cpu, '_is_amx_tile_supported', raising=False)
    assert script.pick_dtype('auto', torch.device('cpu')) == torch.float32


def test_resume_and_sample_only_exclude_each_other(script, tmp_path):
    """resume and sample_only together are refused before anything is loaded."""
    config = dict(script.DEFAULTS, resume=True, sample_only=True, out_dir=str(tmp_path))
    with pytest.raises(script.UsageError, match='resume and sample_only exclude each other'):
        script.main(config)


def test_a_warmup_past_the_decay_is_refused(script):
    """--lr_decay_iters=40 with the default 100 warmup steps: the rate would rise for 100 steps, never decay, and the
    training line `lr warmup 100 then cosine to ... at step 40` would be untrue. A time budget settles the decay."""
    config, overridden = parse(script, '--lr_decay_iters=40', '--warmup_iters=100')
    with pytest.raises(script.UsageError, match=r'warmup_iters \(100\) is past lr_decay_iters \(40\)'):
        script.check_config(config, overridden)
    script.check_config(dict(config, time_budget=60.0), ['warmup_iters'])  # the budget sets lr_decay_iters later
