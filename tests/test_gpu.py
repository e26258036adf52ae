"""The GPU paths, proven on a CPU by simulation: checkpoints written on a GPU, the dtype each GPU gets, the
float16 scaler, the compile probe, out-of-memory, a CPU run on a GPU box, and the documented commands."""
import os
import sys
import random
import shlex

import pytest
import torch

from conftest import ROOT, SCRIPTS, load, tiny_config


def load_ckpt(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def cuda_generator_state(seed, offset=0):
    """What a CUDA generator's get_state() returns: its seed and Philox offset, 16 bytes."""
    return torch.tensor([seed, offset], dtype=torch.int64).view(torch.uint8)


# ------------------------------------------------------------------------------ checkpoints that travel
@pytest.fixture
def trained(tmp_path, text_file):
    """A finished tiny gpt.py run on the CPU (in this process): the module, its config and ckpt.pt's path."""
    gpt = load('gpt')
    config = tiny_config(gpt, tmp_path, text_file, dtype='float32')
    gpt.main(config)
    return gpt, config, tmp_path / 'out' / 'ckpt.pt'


def test_checkpoint_from_a_gpu_samples_and_resumes_on_a_cpu(trained, capsys):
    """A checkpoint as 8 GPUs wrote it (bfloat16, the scaler's empty state, a 16-byte CUDA batch generator, the
    old per-device CUDA states): sampling needs none of the RNG states; resuming says in one line that the batch
    order could not go on, and trains to the end."""
    gpt, config, path = trained
    ckpt = load_ckpt(path)
    ckpt['dtype'] = 'bfloat16'
    ckpt['rng'] = {'python': random.getstate(), 'torch': torch.get_rng_state(), 'batches': cuda_generator_state(1337, 4096),
                   'cuda': [cuda_generator_state(1337 + rank, 4096) for rank in range(8)]}
    torch.save(ckpt, path)
    capsys.readouterr()

    gpt.main(dict(config, sample_only=True, prompt='T', max_new_tokens=10), ['prompt', 'max_new_tokens'])
    out = capsys.readouterr().out
    assert 'note:' not in out
    sample_path = out.split('wrote ')[-1].strip()
    assert 'device cpu, trained in bfloat16, sampled in float32' in open(sample_path).read()

    summary = gpt.main(dict(config, resume=True, max_iters=config['max_iters'] + 10), ['max_iters'])
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith('note:')]
    assert notes == ["note: the checkpoint's batch order was saved on another kind of device: new batches from here on"]
    assert summary['iters'] == config['max_iters'] + 10 and load_ckpt(path)['step'] == config['max_iters'] + 10


@pytest.mark.parametrize('trained_in', ['float32', 'bfloat16'])
def test_float16_samples_and_resumes_from_a_checkpoint_without_a_scaler(tmp_path, text_file, trained_in):
    """A checkpoint trained without the float16 scaler (its state is empty) samples and resumes under
    --dtype=float16; the resumed run then carries the scaler's state."""
    gpt = load('gpt')
    config = tiny_config(gpt, tmp_path, text_file, dtype=trained_in, max_iters=10, eval_interval=10)
    gpt.main(config)
    path = tmp_path / 'out' / 'ckpt.pt'
    assert load_ckpt(path)['scaler'] == {}
    gpt.main(dict(config, dtype='float16', sample_only=True), ['dtype'])
    gpt.main(dict(config, dtype='float16', resume=True, max_iters=20), ['dtype', 'max_iters'])
    ckpt = load_ckpt(path)
    assert ckpt['step'] == 20 and ckpt['dtype'] == 'float16' and ckpt['scaler']['scale'] > 0


def test_dropout_stream_depends_on_seed_rank_and_step_only(tmp_path, text_file):
    """Each training step seeds dropout from (seed, rank, step): what ran before (another run, a resume, another
    world size) does not change it, and two ranks draw different masks at the same step."""
    gpt = load('gpt')
    run, draws = gpt.Run(tiny_config(gpt, tmp_path, text_file, gradient_accumulation_steps=2), ()), []

    def recording_model(x, y):
        draws.append(torch.rand(4))  # from the generator dropout draws from, where the model starts
        return run.model(x, y)

    run.train_model, run.world_size = recording_model, 2  # rank 0 or 1 of 2, each with one micro-batch of two
    for rank, step, before in [(0, 7, 1), (1, 7, 1), (0, 7, 2), (0, 8, 1)]:
        torch.manual_seed(before)  # whatever state the global generator was left in
        run.rank = rank
        gpt.train_step(run, step)
    assert torch.equal(draws[0], draws[2])  # same rank and step, another history
    assert not torch.equal(draws[0], draws[1])  # another rank
    assert not torch.equal(draws[0], draws[3])  # another step


def test_on_a_gpu_the_step_seeds_that_gpus_generator(tmp_path, text_file, monkeypatch):
    """On cuda:1 dropout draws from CUDA device 1's default generator: that one is seeded, no other (stand-ins here)."""
    gpt = load('gpt')
    run = gpt.Run(tiny_config(gpt, tmp_path, text_file), ())
    generators = (torch.Generator().manual_seed(10), torch.Generator().manual_seed(11))
    monkeypatch.setattr(torch.cuda, 'default_generators', generators)
    cpu_seed = torch.default_generator.initial_seed()
    run.device = torch.device('cuda', 1)
    gpt.train_step(run, 7)
    assert generators[1].initial_seed() == hash((run.config['seed'], 0, 7)) % 2**64
    assert generators[0].initial_seed() == 10 and torch.default_generator.initial_seed() == cpu_seed


# ------------------------------------------------------------------------------ the dtype per GPU
@pytest.mark.parametrize('capability, expected', [((6, 0), torch.float16), ((7, 0), torch.float16), ((7, 5), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((8, 9), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_dtype_on_a_gpu_is_bfloat16_only_where_it_is_native(script, monkeypatch, capability, expected):
    """'auto' on a GPU: bfloat16 from compute capability 8.0 (A100, H100), float16 with the scaler before (V100 is
    7.0, T4 7.5), even though torch.cuda.is_bf16_supported() says yes there (it counts emulation)."""
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *args, **kwargs: True)
    assert script.pick_dtype('auto', torch.device('cuda', 0)) == expected
    assert script.pick_dtype('float32', torch.device('cuda', 0)) == torch.float32


# ------------------------------------------------------------------------------ the GPU per process
@pytest.mark.parametrize('name, local_rank, expected', [('auto', None, 0), ('cuda', None, 0), ('cuda:1', None, 1),
                                                        ('auto', 1, 1), ('cuda', 1, 1)])
def test_each_process_takes_its_gpu_and_makes_it_current(script, monkeypatch, name, local_rank, expected):
    """On a box with two GPUs (simulated): 'auto' and 'cuda' take GPU 0, 'cuda:1' GPU 1, and under torchrun each
    process takes GPU LOCAL_RANK; the GPU taken becomes the current device (NCCL works on it) before anything else."""
    current = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'set_device', current.append)
    assert script.pick_device(name, local_rank) == torch.device('cuda', expected)
    assert current == [torch.device('cuda', expected)]


def test_a_gpu_the_box_lacks_is_refused(script, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    with pytest.raises(script.UsageError, match=r"device 'cuda:2' asked for, but this machine has 2 GPU"):
        script.pick_device('cuda:2', None)


# ------------------------------------------------------------------------------ compile, out of memory
@pytest.fixture
def gpt_run_object(tmp_path, text_file):
    gpt = load('gpt')
    return gpt, gpt.Run(tiny_config(gpt, tmp_path, text_file, dtype='float32'), ())


def failing_compile(error):
    def compile_(model):
        def forward(*args):
            model(*args)[1].backward()  # some gradients exist when it fails
            raise error
        return forward
    return compile_


def test_compile_failure_falls_back_to_eager(gpt_run_object, monkeypatch, capsys):
    """A compile that fails on the probe step: one line, the plain model back, no gradients left from the probe,
    and training goes on with it."""
    gpt, run = gpt_run_object
    monkeypatch.setattr(torch, 'compile', failing_compile(RuntimeError('inductor: no C compiler\nmore detail')))
    capsys.readouterr()
    assert gpt.compiled(run) is run.model
    assert capsys.readouterr().out == "torch.compile failed (RuntimeError: inductor: no C compiler): running eagerly\n"
    assert all(p.grad is None for p in run.model.parameters())
    assert torch.isfinite(gpt.train_step(run, 0))


def test_the_compile_probe_builds_every_graph_training_uses(gpt_run_object, monkeypatch):
    """torch.compile builds a graph per mode and input layout: the probe runs a batch as get_batch draws it (a view
    with its own strides) in training and in evaluation, so that the first step and the first estimate compile
    nothing new (compiling there was counted as their time, shrank a time budget's steps, and missed the fallback)."""
    gpt, run = gpt_run_object
    graphs = []

    class Recording(torch.nn.Module):  # a compiled model that notes each graph it would build
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, y):
            graphs.append((self.training, torch.is_grad_enabled(), x.stride(), y.stride()))
            return self.model(x, y)
    monkeypatch.setattr(torch, 'compile', Recording)
    run.fast_model = run.train_model = gpt.compiled(run)
    probed = set(graphs)
    gpt.train_step(run, 0)
    gpt.estimate_loss(run.fast_model, run.splits, run.config, run.autocast)
    assert set(graphs) <= probed and len(probed) == 2
    assert all(p.grad is None for p in run.model.parameters())


def test_out_of_memory_in_the_compile_probe_is_reported_once(gpt_run_object, monkeypatch, capsys):
    """Out of memory on the probe step is no compile failure: it is not reported as one, and the command line
    reports it once, as out of GPU memory, exit 2."""
    gpt, run = gpt_run_object
    monkeypatch.setattr(torch, 'compile', failing_compile(torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')))
    monkeypatch.setattr(gpt, 'main', lambda config, overridden: gpt.compiled(run))
    capsys.readouterr()
    assert gpt.run_command_line([]) == 2
    captured = capsys.readouterr()
    assert 'torch.compile failed' not in captured.out + captured.err
    assert captured.err.count('\n') == 1 and 'error: out of GPU memory' in captured.err


def raising(error):
    def fail(*args):
        raise error
    return fail


def test_out_of_memory_is_caught_on_a_torch_without_torch_OutOfMemoryError(script, monkeypatch, capsys):
    """torch.OutOfMemoryError is new in torch 2.5 and requirements.txt allows 2.4: the scripts catch the name
    torch 2.4 has (torch.cuda.OutOfMemoryError), so an older torch still gets the one-line message."""
    monkeypatch.delattr(torch, 'OutOfMemoryError')
    out_of_memory = torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
    monkeypatch.setattr(script, 'main', raising(out_of_memory))
    assert script.run_command_line([]) == 2
    assert 'out of GPU memory' in capsys.readouterr().err


def test_out_of_memory_on_the_cpu_is_one_line(script, monkeypatch, capsys):
    """The CPU's allocator failing (a batch or a vocabulary too large for the RAM) is one line, exit 2, as on a GPU;
    any other RuntimeError is a bug and keeps its traceback."""
    monkeypatch.setattr(script, 'main', raising(RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
        "1714125604 bytes. Error code 12 (Cannot allocate memory)")))
    assert script.run_command_line([]) == 2
    assert capsys.readouterr().err == (f"{script.SCRIPT}: error: out of memory: try a smaller --batch_size or "
                                       f"--block_size (with more --gradient_accumulation_steps to keep the batch)\n")
    monkeypatch.setattr(script, 'main', raising(RuntimeError('a bug')))
    with pytest.raises(RuntimeError, match='a bug'):
        script.run_command_line([])


def test_under_torchrun_a_broken_collective_is_one_line_and_the_rerun_is_torchrun(script, monkeypatch, capsys):
    """Rank 1's collective broken off by rank 0's failure: one line (rank 0 says why); and the command printed to
    rerun or continue a run is a torchrun one with as many processes (dropout differs by rank)."""
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setattr(script, 'main', raising(RuntimeError('[../gloo/transport/tcp/pair.cc:553] Connection closed '
                                                              'by peer [127.0.0.1]:29500')))
    assert script.run_command_line([]) == 1
    assert capsys.readouterr().err == f"{script.SCRIPT} [rank 1]: stopped: another process of this torchrun job failed\n"
    monkeypatch.setattr(sys, 'argv', [script.SCRIPT, '--out_dir=out/my run'])
    assert script.this_command(resume='true') == (f"torchrun --standalone --nproc_per_node=2 {script.SCRIPT} "
                                                  f"'--out_dir=out/my run' --resume=true")


def test_a_cpu_run_on_a_gpu_box_leaves_cuda_alone(tmp_path, text_file, monkeypatch):
    """--device=cpu where CUDA is available: training, checkpoints, resuming and sampling never initialise CUDA."""
    gpt = load('gpt')

    def no_cuda(*args, **kwargs):
        raise AssertionError('CUDA was initialised by a CPU run')

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    for name in ('_lazy_init', 'init', 'get_rng_state_all', 'set_rng_state_all', 'get_rng_state', 'set_rng_state'):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    config = tiny_config(gpt, tmp_path, text_file, max_iters=10, eval_interval=5)
    gpt.main(config)
    gpt.main(dict(config, resume=True, max_iters=15), ['max_iters'])
    gpt.main(dict(config, sample_only=True))


def test_buffers_are_constants(script, tmp_path, text_file):
    """DDP runs with broadcast_buffers=False: that is right only while no model has a buffer that training changes."""
    run = script.Run(tiny_config(script, tmp_path, text_file), ())
    before = {name: buffer.clone() for name, buffer in run.model.named_buffers()}
    for step in range(3):
        script.train_step(run, step)
    assert {name: buffer for name, buffer in run.model.named_buffers()}.keys() == before.keys()
    for name, buffer in run.model.named_buffers():
        assert torch.equal(buffer, before[name]), name


# ------------------------------------------------------------------------------ commands as written
def documented_commands():
    """(where, line) of every command that runs one of the scripts, in the README's code blocks and the docstrings."""
    found = []
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        in_code = False
        for line in f:
            in_code ^= line.strip().startswith('```')
            found += [('README.md', line.strip())] if in_code and not line.strip().startswith('```') else []
    for name in SCRIPTS:
        found += [(f'{name}.py docstring', line.strip()) for line in load(name).__doc__.splitlines()]
    scripts = {f'{name}.py' for name in SCRIPTS}
    return [(where, line) for where, line in found
            if line.startswith(('python ', 'torchrun ')) and scripts & set(shlex.split(line, comments=True))]


@pytest.mark.parametrize('where, line', documented_commands())
def test_every_documented_command_passes_its_checks(where, line, monkeypatch):
    """Each command in the README or a docstring that runs bigram.py, mlp.py or gpt.py (under torchrun too) has
    settings that pass the scripts' checks, the number of processes included."""
    words = shlex.split(line, comments=True)
    script_at = next(i for i, word in enumerate(words) if word in {f'{name}.py' for name in SCRIPTS})
    module = load(words[script_at][:-3])
    launcher = dict(word[2:].split('=') for word in words[1:script_at] if word.startswith('--') and '=' in word)
    processes = int(launcher.get('nproc_per_node', 1)) * int(launcher.get('nnodes', 1))
    monkeypatch.chdir(ROOT)  # config files are named relative to the repository
    config, _ = module.parse_overrides(words[script_at + 1:], module.DEFAULTS)
    module.check_config(config)
    assert config['gradient_accumulation_steps'] % processes == 0, f"{where}: {line}"


def test_a_documented_resume_goes_past_the_default_run():
    """`python <script> --resume=true --max_iters=N` in a docstring continues the run of the defaults: N is past
    their max_iters (mlp.py's said 20000, its default, a resume that trained nothing)."""
    resumes = [line for _, line in documented_commands() if '--resume=true' in line and 'configs/' not in line]
    assert len(resumes) >= 2
    for line in resumes:
        words = shlex.split(line, comments=True)
        module = load(words[1][:-3])
        config, _ = module.parse_overrides(words[2:], module.DEFAULTS)
        assert config['max_iters'] > module.DEFAULTS['max_iters'], line


def test_the_documented_commands_include_torchrun():
    lines = [line for _, line in documented_commands()]
    assert any(line.startswith('torchrun') for line in lines) and any(line.startswith('python gpt.py') for line in lines)
