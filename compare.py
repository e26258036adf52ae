"""
compare.py: training runs side by side: what differed, how each did, their loss curves, their samples.

    python compare.py                                  # every run under out/, best first
    python compare.py out/base out/wide                # these runs; a folder of runs stands for all of them
    python compare.py out/base out/wide --sort=none    # in the order given
    python compare.py out --png=docs/compare.png       # the picture somewhere else than out/compare.png

A run is the out_dir of bigram.py, mlp.py or gpt.py: summary.json once it has finished, metrics.jsonl (one
line per evaluation), ckpt.pt, samples_<hash>.txt. The table shows the hyperparameters that differ between
the runs (device, dtype, parameter count and processes included) and marks the lowest val_loss_full
with a *. The train and val curves against step and against training seconds go to compare.png in the folder
that holds the runs; the picture needs matplotlib (pip install -r requirements-extra.txt), without it the val
curves are drawn in the terminal.

A run without summary.json is unfinished, and so is one whose summary.json is stale: it was resumed past it
(metrics.jsonl holds evaluations past the summary's iters, or ckpt.pt, written after summary.json, is at
another step). An unfinished run's settings and step are read from its ckpt.pt (torch is imported for those
runs only), else from its sample file. eval.json (from --eval_only) is a score of a checkpoint on a text, not
a training run: the scores are listed below the runs.
"""
import ast
import glob
import itertools
import json
import math
import os
import re
import sys

RUN_FILES = ('summary.json', 'metrics.jsonl', 'ckpt.pt')  # a folder holding any of these is a run
# settings that say where a run wrote and what it was asked to do when started, not what it trained
BOOKKEEPING = ('out_dir', 'resume', 'sample_only', 'log_interval')
RAN_WITH = ('device', 'dtype', 'params', 'processes', 'text_sha256')  # from summary.json (or the sample header)
SAMPLE_MARKER = re.compile(r'^-------- sample \d+ of \d+ --------$', re.MULTILINE)
SAMPLE_LINES = 6                # lines shown of each run's first sample
CHART_ROWS, CHART_COLUMNS = 12, 64
SHORT = 3                       # curves of this many evaluations or fewer get a dot at each in the picture
MARKS = '123456789abcdefghijklmnopqrstuvwxyz'  # one per run in the text chart

class UsageError(Exception):
    """A path that does not exist, an unknown option, a picture that cannot be written: one line on stderr, exit 2."""

def main(args):
    if '-h' in args or '--help' in args:
        print(__doc__.strip())
        return 0
    try:
        paths, sort, png_path = parse_args(args)
        runs, scores, not_runs = collect(paths)
        if sort == 'val_loss_full':
            runs.sort(key=lambda run: (final_loss(run) is None, final_loss(run) or 0))  # unfinished runs last
        png_path = png_path or (default_png_path(runs) if runs else None)
        # python compare.py out/* names the picture of the last time: not a run, and no news
        not_runs = [(path, what) for path, what in not_runs if png_path is None or not same_path(path, png_path)]
        if runs:
            print_table(runs, differing_settings(runs))
        if scores:
            print_scores(scores)
        for path, what in not_runs:
            print(f"{path}: {what}")
        if not runs:
            if not scores:
                print("compare.py: error: no runs to compare", file=sys.stderr)
            return 0 if scores else 1
        show_curves(runs, png_path)
    except UsageError as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return 2
    print_samples(runs)
    return 0

def parse_args(args):
    """The paths to compare, the sort order and the picture's path (None: beside the runs)."""
    paths, sort, png_path = [], 'val_loss_full', None
    for arg in args:
        name, _, value = arg.partition('=')
        if name == '--sort' and value in ('val_loss_full', 'none'):
            sort = value
        elif name == '--png' and value:
            if os.path.splitext(value)[1].lower() != '.png':
                raise UsageError(f"{arg}: the picture is a PNG, its path must end in .png")
            png_path = value
        elif arg.startswith('--'):
            raise UsageError(f"unknown option {arg}: the options are --sort=val_loss_full, --sort=none, --png=PATH")
        else:
            paths.append(arg)
    return paths, sort, png_path

# ------------------------------------------------------------------------------ reading run folders
def collect(paths):
    """The runs and the scores (eval.json) at or below the paths given (each once, in the order given), and the
    paths that hold neither."""
    if not paths:
        if not os.path.isdir('out'):
            raise UsageError("no out/ folder here: name the run folders to compare (python compare.py --help)")
        paths = ['out']
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f"{path} does not exist")
    runs, scores, not_runs = {}, {}, []
    for path in paths:
        found = False
        for folder, subfolders, files in sorted(os.walk(path)):
            folder = os.path.normpath(folder)
            if any(name in files for name in RUN_FILES):
                runs.setdefault(folder, read_run(folder))
            if 'eval.json' in files:
                scores.setdefault(folder, read_score(folder))
            found = found or folder in runs or folder in scores
        if not found:
            not_runs.append((path, what_is(path)))
    return list(runs.values()), list(scores.values()), not_runs

def same_path(path, other):
    return os.path.abspath(path) == os.path.abspath(other)

def what_is(path):
    """What a path that holds no run is, in a few words."""
    if not os.path.isdir(path):
        return "a file, not a run folder"
    try:
        return "not a run: no summary.json, metrics.jsonl or ckpt.pt in it" if os.listdir(path) else "an empty folder"
    except OSError as e:
        return f"cannot be read: {e.strerror}"

def read_run(folder):
    """What compare.py shows of one run; what could not be read goes into its notes."""
    run = {'folder': folder, 'summary': {}, 'metrics': [], 'progress': {}, 'sample': None, 'notes': []}
    summary_path, metrics_path, ckpt_path = (os.path.join(folder, name) for name in RUN_FILES)
    if os.path.exists(summary_path):
        try:
            run['summary'] = read_json(summary_path)
        except (OSError, ValueError) as e:
            run['notes'].append(f"summary.json unreadable ({reason(e)})")
    if os.path.exists(metrics_path):
        try:
            run['metrics'], skipped = read_metrics(metrics_path)
            run['notes'] += [f"{skipped} unreadable line(s) of metrics.jsonl left out"] if skipped else []
        except OSError as e:
            run['notes'].append(f"metrics.jsonl unreadable ({reason(e)})")
    summary, last = run['summary'], run['metrics'][-1] if run['metrics'] else {}
    iters = number(summary.get('iters'))
    evaluated_past = iters is not None and last.get('step', 0) > iters
    checkpoint, unread = {}, []
    if os.path.exists(ckpt_path) and (not summary or evaluated_past or newer(ckpt_path, summary_path)):
        try:
            checkpoint = read_checkpoint(ckpt_path)
        except ImportError:
            unread = ["ckpt.pt not read (reading it needs torch)"]
        except Exception as e:  # a truncated zip, random bytes, pickled code: whatever it is, it is not read
            unread = [f"ckpt.pt unreadable ({reason(e) if isinstance(e, OSError) else 'damaged, or not a checkpoint'})"]
    if iters is not None and (evaluated_past or checkpoint.get('step', iters) != iters):
        further = max(checkpoint.get('step', 0), last.get('step', 0))
        run['notes'].append(f"unfinished: resumed past its summary.json of step {iters:.0f}, to step {further:.0f} "
                            f"(interrupted, or still running): that summary's figures are left out")
        run['summary'] = summary = {}
    elif not os.path.exists(summary_path):
        held = ', '.join(name for name in RUN_FILES if os.path.exists(os.path.join(folder, name)))
        run['notes'].append(f"unfinished: {held}, no summary.json (interrupted, or still running)")
    run['notes'] += unread
    # how far it got: the checkpoint's step, or a later evaluation's (killed before it saved again)
    run['progress'] = checkpoint if checkpoint.get('step', -1) >= last.get('step', -1) else last
    script, settings = None, None
    sample_path = pick_sample_file(folder, summary)
    if sample_path:
        try:
            script, settings, run['sample'] = read_sample_file(sample_path)
        except (OSError, ValueError) as e:
            run['notes'].append(f"{os.path.basename(sample_path)} unreadable ({reason(e)})")
    run['script'] = str(summary.get('script') or checkpoint.get('script') or script or '?')
    if isinstance(summary.get('config'), dict):
        # what the run ran on, not what it asked for: device 'auto' is cpu on one machine and cuda on another; and
        # its size, which differs without a setting that does when a script's model code was edited between runs
        settings = dict(summary['config'], **{name: summary[name] for name in RAN_WITH if name in summary})
    elif checkpoint:  # where the run is now; a sample file of an unfinished run is from an earlier point of it
        settings = checkpoint['settings']
    run['settings'] = settings
    return run

def newer(path, other):
    """Whether path was written after other (ckpt.pt after summary.json: a resumed run saved it)."""
    try:
        return os.path.getmtime(path) > os.path.getmtime(other)
    except OSError:
        return True

def read_checkpoint(path):
    """The script, step, seconds, tokens/s and settings (with the dtype it trained in and its parameter count; its
    device when the config names one) in a ckpt.pt: torch is imported here, for the runs that need it only."""
    import torch
    checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)  # mmap: the tensors stay on disk
    config, model = checkpoint.get('config'), checkpoint.get('model')
    if not (isinstance(config, dict) and isinstance(model, dict) and number(checkpoint.get('step')) is not None):
        raise ValueError("not a checkpoint")
    step_seconds = first_number(checkpoint.get('step_seconds'), 0)
    settings = dict(config, dtype=checkpoint.get('dtype', config.get('dtype')),
                    params=sum(tensor.numel() for tensor in model.values() if isinstance(tensor, torch.Tensor)))
    if settings.get('device') == 'auto':  # not recorded where it ran: '?'
        del settings['device']
    tokens = number(checkpoint.get('tokens'))
    return {'script': checkpoint.get('script'), 'step': checkpoint['step'], 'settings': settings,
            'elapsed': step_seconds + first_number(checkpoint.get('eval_seconds'), 0),
            'tokens_per_second': tokens / step_seconds if tokens and step_seconds else None}

def read_score(folder):
    """A score of a checkpoint on a text: eval.json's figures, or the reason it cannot be read. A run moved aside to
    <out_dir>-<time> took its own checkpoint along: the score names it where it is now, not the newer run's."""
    try:
        score = dict(read_json(os.path.join(folder, 'eval.json')), folder=folder)
    except (OSError, ValueError) as e:
        return {'folder': folder, 'note': f"eval.json unreadable ({reason(e)})"}
    scored_in = os.path.abspath(os.path.dirname(str(score.get('checkpoint'))))
    if re.fullmatch(re.escape(scored_in) + r'-\d{8}-\d{6}(-\d+)?', os.path.abspath(folder)):
        score['checkpoint'] = os.path.join(folder, 'ckpt.pt')
    return score

def read_json(path):
    with open(path, encoding='utf-8') as f:
        summary = json.load(f)
    if not isinstance(summary, dict):
        raise ValueError("not a JSON object")
    return summary

def read_metrics(path):
    """The evaluations in metrics.jsonl, and how many lines could not be read (a line cut short by a crash)."""
    records, skipped = [], 0
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in filter(str.strip, f):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and number(record.get('step')) is not None:
                records.append(record)
            else:
                skipped += 1
    return sorted(records, key=lambda record: record['step']), skipped

def pick_sample_file(folder, summary):
    """The training run's sample file: the one summary.json names, else the oldest (sample_only adds newer ones)."""
    named = summary.get('samples_path')
    # looked up by name in this folder: a run moved aside to out/gpt-<time> still names out/gpt/samples_...
    if isinstance(named, str) and os.path.isfile(os.path.join(folder, os.path.basename(named))):
        return os.path.join(folder, os.path.basename(named))
    return min(glob.glob(os.path.join(glob.escape(folder), 'samples_*.txt')), key=os.path.getmtime, default=None)

def read_sample_file(path):
    """The script, the hyperparameters (the header's name = value lines under '# trained with:', with the device,
    dtype and parameter count of the run) and the first sample of a sample file."""
    with open(path, encoding='utf-8') as f:
        header, *samples = SAMPLE_MARKER.split(f.read())
    # the lines under '# sampled with:' are the sampling's (sample_only's seed, temperature), not the training's;
    # older files have no '# ... with:' lines, their name = value lines are all the training's
    lines = header.partition('\n# sampled with:')[0].splitlines()
    words = lines[0].split() if lines else []
    script = words[1] if words[:1] == ['#'] and len(words) > 1 and words[1].endswith('.py') else None
    settings = {}
    for line in lines:
        name, equals, value = line.partition(' = ')
        if equals and not line.startswith('#'):
            settings[name] = literal(value)
    # '# torch 2.13.0+cpu, device cpu, trained in bfloat16, sampled in float32, 12,345 parameters' ('dtype bfloat16'
    # in older files)
    ran_on = re.search(r'device (\S+), (?:trained in|dtype) (\S+),', header)
    if settings and ran_on:
        settings.update(device=ran_on[1], dtype=ran_on[2])
    params = re.search(r', ([\d,]+) parameters$', header, re.MULTILINE)
    if settings and params:
        settings['params'] = int(params[1].replace(',', ''))
    return script, settings or None, samples[0].strip('\n') if samples else None

def literal(text):
    """A value the header wrote with repr(), read back: nan and inf, no literals, with float(); other text as it is."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return float(text) if text.lstrip('-') in ('nan', 'inf') else text

def reason(error):
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]

def number(value):
    """value when it is a finite number, else None (a summary or a metrics line may hold null, NaN or nothing)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return value if is_number and math.isfinite(value) else None

def first_number(*values):
    return next((value for value in map(number, values) if value is not None), None)

# ------------------------------------------------------------------------------ the table
def final_loss(run):
    return number(run['summary'].get('val_loss_full'))

def differing_settings(runs):
    """The hyperparameters not the same in every run whose settings are known, in the scripts' order."""
    known = [run for run in runs if run['settings'] is not None]
    names = dict.fromkeys(name for run in known for name in run['settings'] if name not in BOOKKEEPING)
    pairs = list(itertools.combinations(known, 2))
    return [name for name in names if not all(alike(run, other, name) for run, other in pairs)]

def alike(run, other, name):
    """Whether two runs had the same setting: shown the same, or one of them unknown ('?'); and two input_paths are
    alike when the runs learned the same text (summary.json's text_sha256), whatever path named it."""
    values = {shown(run['settings'], name), shown(other['settings'], name)}
    if len(values) == 1 or '?' in values:
        return True
    texts = {run['summary'].get('text_sha256'), other['summary'].get('text_sha256')}
    return name == 'input_path' and len(texts) == 1 and None not in texts

def shown(settings, name):
    """A setting as the table shows it, with repr() (a prompt '\\n' stays on its row), the parameter count with
    thousands separators: '-' for a key this run's script lacks, '?' for a run of unknown settings or where it ran."""
    if settings is None or (name in RAN_WITH and name not in settings):
        return '?'
    if name not in settings:
        return '-'
    if name == 'text_sha256':
        return str(settings[name])[:12]  # enough to tell two texts apart
    return f"{settings[name]:,}" if name == 'params' and number(settings[name]) is not None else repr(settings[name])

def figures(run):
    """steps, seconds, tokens/s, val_loss_full, val_bpc: from summary.json, else from ckpt.pt or the last evaluation."""
    summary, progress, loss = run['summary'], run['progress'], final_loss(run)
    values = [(first_number(summary.get('iters'), progress.get('step')), '.0f'),
              (first_number(summary.get('train_seconds'), progress.get('elapsed')), '.1f'),
              (first_number(summary.get('tokens_per_second'), progress.get('tokens_per_second')), ',.0f'),
              (loss, '.4f'),
              (first_number(summary.get('val_bpc'), None if loss is None else loss / math.log(2)), '.4f')]
    return [formatted(value, spec) for value, spec in values]

def print_table(runs, differing):
    """One row per run, the best marked; below it, what is odd about a run."""
    best = min((run for run in runs if final_loss(run) is not None), key=final_loss, default=None)
    header = ['', 'run', 'script', *differing, 'steps', 'seconds', 'tokens/s', 'val_loss_full', 'val_bpc']
    rows = [['*' if run is best else '', run['folder'], run['script'],
             *[shown(run['settings'], name) for name in differing], *figures(run)] for run in runs]
    print_rows(header, rows, left=3)
    if best:
        print("* the lowest val_loss_full (nats per character; val_bpc: bits per character)")
    for run in runs:
        if run['notes']:
            print(f"{run['folder']}: {'; '.join(run['notes'])}")

def print_scores(scores):
    """One row per eval.json: a checkpoint's loss on a text (the checkpoint and text it names, as it wrote them)."""
    print("\nscores of a checkpoint on a text (eval.json, from --eval_only=true; loss in nats per character)")
    columns = (('script', None), ('checkpoint', None), ('input_path', None), ('eval_split', None), ('step', '.0f'),
               ('characters', ','), ('loss', '.4f'), ('bpc', '.4f'))
    rows = [[score['folder'], *[str(score.get(key, '?')) if spec is None else formatted(score.get(key), spec)
                                for key, spec in columns]] for score in scores if 'note' not in score]
    print_rows(['scores', *[key for key, _ in columns]], rows, left=5)
    for score in scores:
        if 'note' in score:
            print(f"{score['folder']}: {score['note']}")

def formatted(value, spec):
    return '-' if number(value) is None else format(value, spec)

def print_rows(header, rows, left):
    """A header, a rule and the rows, each column as wide as its widest cell: the first `left` left-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = ['-' * width if header[i] else '' for i, width in enumerate(widths)]
    for row in [header, rule, *rows]:
        cells = [cell.ljust(width) if i < left else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        print('  '.join(cells).rstrip())

# ------------------------------------------------------------------------------ the curves
def show_curves(runs, png_path):
    """The picture when matplotlib is there, else the val curves in characters."""
    drawn = [run for run in runs if curve(run, 'step', 'val_loss')]
    if not drawn:
        print("\nno curves to draw: no run has an evaluation in its metrics.jsonl")
    elif draw_picture(drawn, png_path):
        print(f"\nwrote {png_path}: the train and val loss estimates against step and training seconds")
    else:
        print_chart(drawn)
        print("for a picture of the train and val curves against step and seconds: pip install -r requirements-extra.txt")

def curve(run, x_key, y_key):
    """The (x, y) points of a run's evaluations that hold both as numbers."""
    points = [(number(record.get(x_key)), number(record.get(y_key))) for record in run['metrics']]
    return [(x, y) for x, y in points if x is not None and y is not None]

def legend_names(runs):
    """Each run's name in a legend: its folder, its script when the scripts differ, and the settings that differ
    from the other runs of its script (between two scripts nearly every setting differs)."""
    several_scripts = len({run['script'] for run in runs}) > 1
    names = []
    for run in runs:
        differing = differing_settings([other for other in runs if other['script'] == run['script']])
        script = f" ({run['script']})" if several_scripts else ''
        names.append(' '.join([run['folder'] + script] + [f"{name}={shown(run['settings'], name)}" for name in differing]))
    return names

def loss_range(curves):
    """The lowest and highest loss, leaving out the first evaluation of each curve of three or more: that is the
    untrained model (about ln(vocabulary size)), and it would squeeze the rest of the curves into a few rows; a
    shorter curve keeps it, or nothing of it but a stub would be seen."""
    losses = [loss for points in curves for _, loss in (points[1:] if len(points) > 2 else points)]
    return min(losses), max(losses)

def default_png_path(runs):
    """compare.png in the folder that holds all the runs (out/ for out/base and out/wide); in the current folder
    when that is the filesystem root (runs in unrelated places: out/c1 and /tmp/a b/run 1)."""
    parents = [os.path.dirname(os.path.abspath(run['folder'])) for run in runs]
    common = os.path.commonpath(parents)
    if os.path.dirname(common) == common:  # the root: no folder of runs to write beside
        return 'compare.png'
    return os.path.relpath(os.path.join(common, 'compare.png'))

def draw_picture(runs, png_path):
    """Two panels, loss against step and against training seconds; False when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, panels = plt.subplots(1, 2, figsize=(11, 5), sharey=True, layout='constrained')
    for i, (run, name) in enumerate(zip(runs, legend_names(runs))):
        for panel, x_key in zip(panels, ('step', 'elapsed')):
            for y_key, style in (('train_loss', '--'), ('val_loss', '-')):
                points = curve(run, x_key, y_key)
                panel.plot([x for x, _ in points], [y for _, y in points], style, color=f"C{i % 10}", markersize=4,
                           marker='o' if len(points) <= SHORT else None,  # seen beside a long run: a dot at each
                           label=name if (panel, y_key) == (panels[0], 'val_loss') else None)
    low, high = loss_range([curve(run, 'step', key) for run in runs for key in ('train_loss', 'val_loss')])
    margin = 0.05 * (high - low) or 0.1
    panels[0].set(xlabel='step', ylabel='loss (nats per character)', ylim=(low - margin, high + margin))
    panels[1].set(xlabel='training seconds')
    for panel in panels:
        panel.grid(alpha=0.3)
    figure.legend(loc='outside lower center', ncols=1 + (len(runs) > 3), title='val estimate solid, train estimate dashed')
    try:
        figure.savefig(png_path, dpi=100)
    except OSError as e:
        raise UsageError(f"cannot write {png_path}: {e.strerror}") from None
    finally:
        plt.close(figure)
    return True

def print_chart(runs):
    """The val curves against step, CHART_ROWS characters high, each run drawn with its mark."""
    curves = [curve(run, 'step', 'val_loss') for run in runs]
    last_step = max(step for points in curves for step, _ in points) or 1
    low, high = loss_range(curves)
    grid = [[' '] * CHART_COLUMNS for _ in range(CHART_ROWS)]
    for mark, points in zip(MARKS, curves):
        losses = {column: interpolate(points, last_step * column / (CHART_COLUMNS - 1))
                  for column in range(CHART_COLUMNS)}
        # and each evaluation in its own column: a 40-step run beside a 3000-step one has no column of its own
        losses.update({round(step / last_step * (CHART_COLUMNS - 1)): loss for step, loss in points})
        for column, loss in losses.items():
            row = None if loss is None else round((high - loss) / ((high - low) or 1) * (CHART_ROWS - 1))
            if row is not None and 0 <= row < CHART_ROWS:  # above the top: the untrained model's first evaluation
                grid[row][column] = mark
    print("\nval loss against step")
    for row, cells in enumerate(grid):
        axis = f"{high - (high - low) * row / (CHART_ROWS - 1):.2f}" if row in (0, CHART_ROWS // 2, CHART_ROWS - 1) else ''
        print(f"{axis:>7} |{''.join(cells)}".rstrip())
    print(f"{'':>7} +{'-' * CHART_COLUMNS}\n{'':>8}0{last_step:>{CHART_COLUMNS - 1}.0f}")
    for mark, name in zip(MARKS, legend_names(runs)):
        print(f"  {mark}  {name}")

def interpolate(points, step):
    """The loss at step on the straight lines between evaluations; None outside them."""
    for (step_before, loss_before), (step_after, loss_after) in zip(points, points[1:] or points):
        if step_before <= step <= step_after:
            share = (step - step_before) / ((step_after - step_before) or 1)
            return loss_before + share * (loss_after - loss_before)
    return None

# ------------------------------------------------------------------------------ the samples
def print_samples(runs):
    print(f"\nthe first {SAMPLE_LINES} lines of each run's first sample")
    for run in runs:
        print(f"\n==== {run['folder']} ({run['script']}) ====")
        print('\n'.join(run['sample'].splitlines()[:SAMPLE_LINES]) if run['sample'] is not None else "(no sample file)")

if __name__ == '__main__':
    sys.stdout.reconfigure(errors='replace')  # a sample's characters that the terminal cannot show become '?'
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C: nothing was written but, perhaps, the picture
        print("compare.py: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader stopped early (python compare.py | head): nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
