"""The drift test: the blocks marked 'shared' are byte-identical in bigram.py, mlp.py and gpt.py,
each script has one model section and a DEFAULTS that is exactly its hyperparameter block, and
every key the shared code reads with config['...'] exists in every script."""
import ast
import difflib
import os
import re

import pytest

from conftest import ROOT, SCRIPTS, load

SHARED_START = re.compile(r'^# ---- shared: (.+?) ----$', re.M)
SHARED_BLOCK = re.compile(r'^# ---- shared: (?P<name>.+?) ----\n(?P<body>.*?)^# ---- end shared: (?P=name) ----$', re.M | re.S)
MODEL_START = re.compile(r'^# ---- model: .+ ----$', re.M)
MODEL_BLOCK = re.compile(r'^# ---- model: .+? ----\n(?P<body>.*?)^# ---- end model ----$', re.M | re.S)
HYPERPARAMETERS = re.compile(r'^# -+ hyperparameters\n(?P<body>.*?)^# -{10,}$', re.M | re.S)
EXPECTED_BLOCKS = {'imports', 'overrides', 'data', 'evaluation', 'sampling', 'files', 'training', 'command line'}


def source(name):
    with open(os.path.join(ROOT, f'{name}.py'), encoding='utf-8', newline='') as f:
        return f.read()


def shared_blocks(name):
    """{block name: body} of one script; every start marker must have its end marker, and no name twice."""
    text = source(name)
    starts = SHARED_START.findall(text)
    blocks = [(m['name'], m['body']) for m in SHARED_BLOCK.finditer(text)]
    assert [n for n, _ in blocks] == starts, f"{name}.py: a shared block without its end marker among {starts}"
    assert len(set(starts)) == len(starts), f"{name}.py: a shared block name appears twice: {starts}"
    return dict(blocks)


def test_same_shared_block_names():
    """The three scripts mark the same shared blocks, and at least the expected ones."""
    names = {script: set(shared_blocks(script)) for script in SCRIPTS}
    for script in SCRIPTS:
        assert EXPECTED_BLOCKS <= names[script], f"{script}.py lacks shared blocks {EXPECTED_BLOCKS - names[script]}"
        assert names[script] == names[SCRIPTS[0]], (
            f"shared block names differ: {SCRIPTS[0]}.py has {sorted(names[SCRIPTS[0]])}, {script}.py has {sorted(names[script])}")


@pytest.mark.parametrize('block', sorted(EXPECTED_BLOCKS.union(*(SHARED_START.findall(source(s)) for s in SCRIPTS))))
def test_shared_block_identical(block):
    """Each shared block is byte-identical in the three scripts (a unified diff shows any drift)."""
    first = SCRIPTS[0]
    reference = shared_blocks(first).get(block)
    assert reference is not None, f"{first}.py has no shared block '{block}'"
    for other in SCRIPTS[1:]:
        body = shared_blocks(other).get(block)
        assert body is not None, f"{other}.py has no shared block '{block}'"
        if body != reference:
            diff = ''.join(difflib.unified_diff(reference.splitlines(True), body.splitlines(True),
                                                f'{first}.py [shared: {block}]', f'{other}.py [shared: {block}]'))
            pytest.fail(f"shared block '{block}' drifted between {first}.py and {other}.py:\n{diff}")


@pytest.mark.parametrize('name', SCRIPTS)
def test_one_model_section(name):
    """Exactly one model section, outside the shared blocks, defining the model contract."""
    text = source(name)
    assert len(MODEL_START.findall(text)) == 1, f"{name}.py should have exactly one '# ---- model: ... ----' marker"
    assert len(re.findall(r'^# ---- end model ----$', text, re.M)) == 1, f"{name}.py: one '# ---- end model ----'"
    match = MODEL_BLOCK.search(text)
    assert match, f"{name}.py: the model section's markers are out of order"
    body = match['body']
    assert '# ---- shared:' not in body, f"{name}.py: a shared block inside the model section"
    defined = {node.name for node in ast.parse(body).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assigned = {t.id for node in ast.parse(body).body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert {'create_model', 'full_val_windows'} <= defined, f"{name}.py model section defines {sorted(defined)}"
    assert 'MODEL_KEYS' in assigned
    assert any(isinstance(node, ast.ClassDef) for node in ast.parse(body).body), f"{name}.py: no model class"
    for block, shared_body in shared_blocks(name).items():
        for node in ast.parse(shared_body).body:
            names = {node.name} if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
                {t.id for t in getattr(node, 'targets', []) if isinstance(t, ast.Name)}
            assert not names & {'create_model', 'full_val_windows', 'MODEL_KEYS'}, (
                f"{name}.py: shared block '{block}' defines {names}, which belong in the model section")


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
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == 'config':
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                found.add(node.slice.value)
            elif isinstance(node.slice, ast.Name) and node.slice.id in loop_names:
                found.update(loop_names[node.slice.id])
        for child in ast.iter_child_nodes(node):
            visit(child, loop_names, found)

    visit(tree, {}, keys)
    return keys, guarded - keys


def test_shared_code_reads_only_keys_every_script_has():
    """Every config['key'] the shared code reads unguarded is a hyperparameter of all three scripts."""
    keys, guarded, literal = set(), set(), set()
    for name in SCRIPTS:  # every copy, in case one has drifted
        text = ''.join(shared_blocks(name).values())
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
        assert not missing, f"the shared code reads config[...] for {sorted(missing)}, which {name}.py does not define"


def test_required_keys_parser_sees_guards_and_loops():
    """The key collector itself: loops over name tuples count, `if 'k' in config` guards and .get() do not."""
    code = ("def f(config):\n"
            "    a = config['alpha']\n"
            "    b = config.get('beta', 1)\n"
            "    for name in ('gamma', 'delta'):\n"
            "        print(config[name])\n"
            "    if 'eps' in config:\n"
            "        print(config['eps'], config['zeta'])\n"
            "    else:\n"
            "        print(config['eta'])\n")
    assert required_config_keys(ast.parse(code)) == ({'alpha', 'gamma', 'delta', 'eta'}, {'eps', 'zeta'})
