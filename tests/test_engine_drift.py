"""The layout test: each script is docstring, imports, hyperparameters, its own part (the model and what
is specific to it), then one engine block that is byte-identical in bigram.py, mlp.py and gpt.py; every key
the engine reads with config['...'] exists in every script."""
import ast
import difflib
import os
import re

import pytest

from conftest import ROOT, SCRIPTS, load

ENGINE_START = re.compile(r'^# =+ the engine\n', re.M)
ENGINE_END = re.compile(r'^# =+ end of the engine\n', re.M)
OWN_PART = re.compile(r'^# =+ (\w+)\.py\'s own part\n', re.M)
HYPERPARAMETERS = re.compile(r'^# -+ hyperparameters\n(?P<body>.*?)^# -{10,}$', re.M | re.S)
OWN_NAMES = {'MODEL_KEYS', 'MODEL_TYPES', 'VOCAB_AXES', 'check_model_config', 'create_model', 'shortest_split',
             'full_val_windows'}
MODEL_BEFORE_LINE = {'bigram': 130, 'mlp': 130, 'gpt': 200}  # the lecture's gpt.py reaches its model at line 64


def source(name):
    with open(os.path.join(ROOT, f'{name}.py'), encoding='utf-8', newline='') as f:
        return f.read()


def sections(name):
    """(imports, own part, engine, what follows the engine) of one script, each marker present exactly once."""
    text = source(name)
    markers = []
    for marker in (ENGINE_START, ENGINE_END):
        found = list(marker.finditer(text))
        assert len(found) == 1, f"{name}.py should have one line matching {marker.pattern!r}, has {len(found)}"
        markers.append(found[0])
    own = list(OWN_PART.finditer(text))
    assert [m[1] for m in own] == [name], f"{name}.py should have one '# ==== {name}.py's own part' marker"
    tree = ast.parse(text)
    imports_end = max(node.end_lineno for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))
    imports = ''.join(text.splitlines(True)[tree.body[1].lineno - 1:imports_end])
    start, end = markers
    assert own[0].start() < start.start() < end.start(), f"{name}.py: its own part must come before the engine"
    return imports, text[own[0].end():start.start()], text[start.start():end.end()], text[end.end():]


def defined_names(code):
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        names.update(t.id for t in getattr(node, 'targets', []) if isinstance(t, ast.Name))
    return names


def unified_diff(first, other, a, b, what):
    return ''.join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), f'{first}.py [{what}]', f'{other}.py [{what}]'))


@pytest.mark.parametrize('part', ['imports', 'engine'])
def test_engine_and_imports_identical(part):
    """The engine block (and the imports) are byte-identical in the three scripts; a failure shows the diff."""
    first = SCRIPTS[0]
    index = {'imports': 0, 'engine': 2}[part]
    reference = sections(first)[index]
    for other in SCRIPTS[1:]:
        body = sections(other)[index]
        if body != reference:
            pytest.fail(f"the {part} drifted between {first}.py and {other}.py:\n"
                        + unified_diff(first, other, reference, body, part))


@pytest.mark.parametrize('name', SCRIPTS)
def test_own_part_holds_what_differs(name):
    """The own part defines the model class and the seven names the engine uses; the engine defines none of them."""
    _, own, engine, _ = sections(name)
    defined = defined_names(own)
    assert OWN_NAMES <= defined, f"{name}.py's own part lacks {sorted(OWN_NAMES - defined)}"
    assert any(isinstance(node, ast.ClassDef) and any(getattr(b, 'attr', None) == 'Module' for b in node.bases)
               for node in ast.parse(own).body), f"{name}.py's own part defines no nn.Module"
    assert not defined_names(engine) & OWN_NAMES, f"the engine defines {defined_names(engine) & OWN_NAMES}"
    assert not defined_names(engine) & defined, f"{name}.py defines {defined_names(engine) & defined} twice"


@pytest.mark.parametrize('name', SCRIPTS)
def test_the_model_comes_first(name):
    """A reader meets the model near the top, where the lecture puts it."""
    text = source(name)
    first_class = next(node for node in ast.parse(text).body if isinstance(node, ast.ClassDef))
    assert first_class.lineno < MODEL_BEFORE_LINE[name], (
        f"{name}.py's first class {first_class.name} is at line {first_class.lineno}, not before {MODEL_BEFORE_LINE[name]}")


@pytest.mark.parametrize('name', SCRIPTS)
def test_only_the_main_guard_after_the_engine(name):
    tail = sections(name)[3]
    assert tail.strip() == "if __name__ == '__main__':\n    sys.exit(run_command_line(sys.argv[1:]))", tail


@pytest.mark.parametrize('name', SCRIPTS)
def test_defaults_are_the_hyperparameter_globals(name):
    """DEFAULTS holds exactly the names assigned in the hyperparameter block, with their values."""
    module = load(name)
    match = HYPERPARAMETERS.search(source(name))
    assert match, f"{name}.py: no '# ---- hyperparameters' block ended by a '# ------' line"
    assigned = []
    for node in ast.parse(match['body']).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{name}.py: the hyperparameter block should only hold `name = value` lines, found {ast.unparse(node)}")
        assigned.append(node.targets[0].id)
    assert len(assigned) == len(set(assigned)), f"{name}.py assigns a hyperparameter twice"
    assert isinstance(module.DEFAULTS, dict)
    assert set(module.DEFAULTS) == set(assigned), (
        f"{name}.py: DEFAULTS minus the block {set(module.DEFAULTS) - set(assigned)}, "
        f"the block minus DEFAULTS {set(assigned) - set(module.DEFAULTS)}")
    for key in assigned:
        assert module.DEFAULTS[key] == getattr(module, key)
    assert {'batch_size', 'block_size', 'max_iters', 'learning_rate', 'seed'} <= set(module.DEFAULTS)
    assert set(module.TYPES) == set(assigned), f"{name}.py: TYPES and the hyperparameters differ"
    for key in assigned:  # as shipped, every value has the type it declares
        assert module.typed(key, module.DEFAULTS[key], module.TYPES[key], '') is module.DEFAULTS[key]


def required_config_keys(tree):
    """Keys the code reads as config['key'] (or config[name] in a loop over a tuple of names), and apart those
    read inside an `if 'key' in config:` guard. config.get(...) reads are optional and not collected."""
    keys, guarded = set(), set()

    def visit(node, loop_names, found):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and any(
                isinstance(op, ast.In) for op in node.test.ops) and any(
                isinstance(c, ast.Name) and c.id == 'config' for c in node.test.comparators):
            for child in node.body:
                visit(child, loop_names, guarded)  # guarded: the script may not have that key
            for child in node.orelse:
                visit(child, loop_names, found)
            return
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, (ast.Tuple, ast.List)) \
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.iter.elts):
            loop_names = dict(loop_names, **{node.target.id: [e.value for e in node.iter.elts]})
        if isinstance(node, ast.Subscript) and (getattr(node.value, 'id', None) == 'config'
                                                or getattr(node.value, 'attr', None) == 'config'):  # run.config too
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                found.add(node.slice.value)
            elif isinstance(node.slice, ast.Name) and node.slice.id in loop_names:
                found.update(loop_names[node.slice.id])
        for child in ast.iter_child_nodes(node):
            visit(child, loop_names, found)

    visit(tree, {}, keys)
    return keys, guarded - keys


def test_engine_reads_only_keys_every_script_has():
    """Every config['key'] the engine reads unguarded is a hyperparameter of all three scripts."""
    keys, guarded, literal = set(), set(), set()
    for name in SCRIPTS:  # every copy, in case one has drifted
        text = sections(name)[2]
        required, maybe = required_config_keys(ast.parse(text))
        keys |= required
        guarded |= maybe
        literal |= set(re.findall(r"\bconfig\[\s*'(\w+)'\s*\]", text))
    # the regex view of the same thing: each literal config['key'] is seen by the parser, required or guarded
    assert literal <= keys | guarded, f"literal reads missed by the parser: {literal - keys - guarded}"
    assert {'batch_size', 'block_size', 'seed', 'eval_iters', 'top_k', 'dtype', 'temperature'} <= keys
    for name in SCRIPTS:
        defaults = load(name).DEFAULTS
        missing = keys - set(defaults)
        assert not missing, f"the engine reads config[...] for {sorted(missing)}, which {name}.py does not define"


def test_required_keys_parser_sees_guards_and_loops():
    """The key collector itself: loops over name tuples count, `if 'k' in config` guards and .get() do not."""
    code = ("def f(config):\n"
            "    a = config['alpha'] + run.config['theta']\n"
            "    b = config.get('beta', 1)\n"
            "    for name in ('gamma', 'delta'):\n"
            "        print(config[name])\n"
            "    if 'eps' in config:\n"
            "        print(config['eps'], config['zeta'])\n"
            "    else:\n"
            "        print(config['eta'])\n")
    assert required_config_keys(ast.parse(code)) == ({'alpha', 'theta', 'gamma', 'delta', 'eta'}, {'eps', 'zeta'})
