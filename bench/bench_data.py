"""
bench/bench_data.py: how long a script takes to load a large text, and how much memory it holds doing so.

    python bench/bench_data.py                                  # tiny shakespeare repeated to 100 MB
    python bench/bench_data.py --mb=1000 --text=accents --steps=5
    python bench/bench_data.py --input_path=enwik8 --script=gpt --block_size=256
    python bench/bench_data.py --root=/tmp/before               # the scripts of another checkout, same measures

Its own options:

    --input_path=''   the text to load; empty: build one of --mb megabytes from input.txt (tiny shakespeare),
                      in --data_dir, and delete it afterwards
    --mb=100          size of the built text, in 10^6 bytes
    --text=ascii      the built text: ascii (input.txt repeated), accents (with curly quotes, dashes and
                      accented letters: multi-byte UTF-8, 68 characters), cjk (accents plus 400 CJK characters
                      and emoji: 471 characters, stored in int16)
    --data_dir=''     where the built text goes; empty: a temporary folder
    --script=bigram   whose load_data to time, and which script --steps runs
    --steps=0         above 0: also run `python <script> --max_iters=<steps>` on the text, on the CPU, and time
                      that whole process (start-up, training, evaluations, val_loss_full, samples)
    --root=''         the checkout whose scripts run; empty: this one
    --json=''         also write the results there as JSON

Other --name=value arguments are the script's (a config file too): they size the run, and block_size the split.

Start-up is the script's load_data(config, None, cpu): reading the text, its vocabulary, encoding, the
train/val split. Each measure runs in a fresh process whose peak resident memory (ru_maxrss) comes from
os.wait4, so no measure inherits another's memory. Bytes per character: the peak above what the same
process held before load_data (python, torch, the script), divided by the characters of the text.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]
import gpt  # noqa: E402  (nothing runs on import; only its override parser is used)
from bench_gpt import check_json_path  # noqa: E402

BENCH_DEFAULTS = {'input_path': '', 'mb': 100, 'text': 'ascii', 'data_dir': '', 'script': 'bigram', 'steps': 0,
                  'root': '', 'json': ''}
EXTRA_CHARS = ''.join(chr(0x4E00 + 37 * i) for i in range(400)) + '\U0001F600\U0001F680\U0001F9E0'

# run in the measured process: load the data as the script does, print what it took as JSON
LOAD = """
import json, resource, sys, time, torch
sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p]  # --root's script, never the current folder's ('')
module = __import__(sys.argv[2])
config, _ = module.parse_overrides(sys.argv[3:], module.DEFAULTS)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
chars, splits, _ = module.load_data(config, None, torch.device('cpu'))
seconds = time.perf_counter() - started
print(json.dumps({'seconds': seconds, 'before_kb': before, 'vocabulary': len(chars),
                  'characters': sum(len(split) for split in splits.values()), 'dtype': str(splits['train'].dtype)}))
"""

def parse_args(args):
    """(bench options, the arguments meant for the script): bench options are picked out by name."""
    mine = [arg for arg in args if arg.startswith('--') and arg[2:].partition('=')[0] in BENCH_DEFAULTS]
    options, _ = gpt.parse_overrides(mine, BENCH_DEFAULTS)
    if options['text'] not in ('ascii', 'accents', 'cjk'):
        raise gpt.UsageError(f"text must be ascii, accents or cjk, got '{options['text']}'")
    if options['script'] not in ('bigram', 'mlp', 'gpt'):
        raise gpt.UsageError(f"script must be bigram, mlp or gpt, got '{options['script']}'")
    if options['mb'] <= 0 or options['steps'] < 0:
        raise gpt.UsageError("mb must be positive and steps not negative")
    script = os.path.join(options['root'] or ROOT, f"{options['script']}.py")
    if not os.path.isfile(script):
        raise gpt.UsageError(f"root: no {script}")
    check_json_path(options['json'])
    return options, [arg for arg in args if arg not in mine]

def work_folder(data_dir):
    """A temporary folder in data_dir (or the system's), deleted with what is in it when the `with` ends."""
    try:
        return tempfile.TemporaryDirectory(dir=data_dir or None)
    except OSError as e:
        raise gpt.UsageError(f"data_dir: cannot make a folder in {data_dir or tempfile.gettempdir()} "
                             f"({e.strerror})") from None

def build_text(path, megabytes, kind):
    """Tiny shakespeare repeated to megabytes * 10^6 bytes (less a character cut in two at the end), piece by piece."""
    source = os.path.join(ROOT, 'input.txt')
    try:
        with open(source, encoding='utf-8') as f:
            unit = f.read()
    except OSError as e:
        raise gpt.UsageError(f"cannot read {source} ({e.strerror}): `python bigram.py` downloads it") from None
    if kind != 'ascii':
        unit = unit.replace("'", '\u2019').replace('--', '\u2014').replace('e,', '\u00e9,').replace('a ', '\u00e0 ')
    if kind == 'cjk':
        unit += EXTRA_CHARS + '\n'
    unit = unit.encode('utf-8')
    left = megabytes * 10 ** 6
    with open(path, 'wb') as f:
        while left > 0:
            piece = unit[:left]
            f.write(piece.decode('utf-8', errors='ignore').encode('utf-8'))
            left -= len(piece)
    return os.path.getsize(path)

def measured(command):
    """Run command: (its stdout, wall seconds, peak resident memory in bytes); a failure is a UsageError."""
    with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        try:
            _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, whatever ran before
        except BaseException:  # Ctrl-C: the child goes too, before its folder is deleted
            process.kill()
            process.wait()
            raise
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode:
            lines = err.read().strip().splitlines() or [f"exit code {process.returncode}"]
            raise gpt.UsageError(f"{os.path.basename(command[1])} failed: {lines[-1]}")
        return out.read(), seconds, usage.ru_maxrss * (1 if sys.platform == 'darwin' else 1024)  # kB on Linux

def bench_load(path, options, script_args):
    """load_data in a fresh process: seconds, characters, vocabulary, dtype, peak memory and bytes per character."""
    root = options['root'] or ROOT
    out, _, peak = measured([sys.executable, '-c', LOAD, root, options['script'], f'--input_path={path}', *script_args])
    result = json.loads(out.splitlines()[-1])
    before = result.pop('before_kb') * 1024
    result.update(peak_mb=peak / 1e6, before_mb=before / 1e6, bytes_per_char=(peak - before) / result['characters'])
    gpt.log(f"load_data ({options['script']}.py): {result['seconds']:.2f} s, {result['characters']:,} characters, "
            f"vocabulary {result['vocabulary']}, {result['dtype']}; peak {peak / 1e6:,.0f} MB, {before / 1e6:,.0f} MB "
            f"before it: {result['bytes_per_char']:.2f} bytes per character")
    return result

def bench_run(path, options, script_args, workdir):
    """python <script> --max_iters=steps on the text, on the CPU: wall seconds and peak memory of the whole process."""
    script = os.path.join(options['root'] or ROOT, f"{options['script']}.py")
    command = [sys.executable, script, *script_args, f'--input_path={path}', f"--max_iters={options['steps']}",
               '--device=cpu', f"--out_dir={os.path.join(workdir, 'out')}"]
    _, seconds, peak = measured(command)
    shown = ' '.join(['python', f"{options['script']}.py", f"--max_iters={options['steps']}", *script_args])
    gpt.log(f"{shown}: {seconds:.1f} s wall, peak {peak / 1e6:,.0f} MB")
    return {'run_seconds': seconds, 'run_peak_mb': peak / 1e6}

def main(args):
    options, script_args = parse_args(args)
    with work_folder(options['data_dir']) as workdir:
        path = options['input_path']
        if not path:
            path = os.path.join(workdir, f"{options['text']}_{options['mb']}mb.txt")
            build_text(path, options['mb'], options['text'])
        if not os.path.isfile(path):
            raise gpt.UsageError(f"no file at input_path {path}")
        size = os.path.getsize(path)
        gpt.log(f"text: {path}, {size:,} bytes; scripts from {options['root'] or ROOT}; {os.cpu_count()} CPUs, "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        summary = {'input_path': path, 'bytes': size, 'text': None if options['input_path'] else options['text'],
                   'script': options['script'], 'root': options['root'] or ROOT, 'args': script_args,
                   **bench_load(path, options, script_args)}
        if options['steps']:
            summary.update(bench_run(path, options, script_args, workdir))
    if options['json']:
        gpt.write_atomic(options['json'], lambda f: f.write(json.dumps(summary, indent=2).encode()))

def run_command_line(args):
    """Run main; a usage problem or a failed measure is one line on stderr and exit code 2, a failed write
    (the built text, --json) exit code 1."""
    if '-h' in args or '--help' in args:
        gpt.log(__doc__)  # quiet into a closed pipe (`| head`)
        return 0
    try:
        main(args)
    except gpt.UsageError as e:
        print(f"bench_data.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench_data.py: interrupted: nothing was written", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"bench_data.py: error: {e}", file=sys.stderr)
        return 1
    return 0

if __name__ == '__main__':
    sys.exit(run_command_line(sys.argv[1:]))
