"""Interleaved, load-checked rounds: the measurement method every bench/peer script uses.

Each side is a shell command that prints bench lines (`<kind> impl=<name> key=value ... <metric>=<number>`).
One round runs every side once, in a fresh process; the order rotates each round (A B, then B A, ...). Before each
run we wait until /proc/stat (every CPU, every container on this kernel) shows the machine idle. During the run we
measure the CPU that *other* processes used: /proc/stat busy time minus the run's own process tree (getrusage of
the reaped children), over the wall time. A run during which others used more than FOREIGN_MAX cores is rejected
and repeated, up to RETRIES times. Only accepted runs count.

Output: the aggregated bench lines, one per measurement and side, with the median as the metric and its min and
max (`tok_s=123 tok_s_min=110 tok_s_max=130 runs=5 rejected=1`), which join.py renders as `median [min, max]` with
the ratio of medians. Raw logs of every run, accepted or not, and runs.jsonl go to --out.

    rounds.py --out DIR [--rounds 5] --side NAME 'command' --side NAME 'command' ...
    environment: ROUNDS (5), FOREIGN_MAX (0.10 cores), RETRIES (4), IDLE_BUSY (10 %), IDLE_WAIT (300 s)
Self-test:  python3 bench/peer/rounds.py --self-test
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# /proc/stat's own tick resolution (10 ms) on both sides of the subtraction, and the bash wrapper itself.
TOLERANCE_S = 0.05


def cpu_ticks():
    """(busy, idle) ticks over all CPUs: user nice system irq softirq steal / idle iowait."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v[3] + v[4]


def wait_idle(max_busy_pct, limit_s):
    """Wait until two consecutive seconds show at most max_busy_pct of the machine busy; returns a note."""
    start = time.monotonic()
    quiet = 0
    b0, i0 = cpu_ticks()
    while time.monotonic() - start < limit_s:
        time.sleep(1)
        b1, i1 = cpu_ticks()
        pct = 100.0 * (b1 - b0) / max(1, (b1 - b0) + (i1 - i0))
        b0, i0 = b1, i1
        quiet = quiet + 1 if pct <= max_busy_pct else 0
        if quiet >= 2:
            return f"idle after {time.monotonic() - start:.0f}s"
    return f"still busy after {limit_s:.0f}s (last {pct:.0f}%)"


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(command, log_path):
    """Run one side; returns (exit status, wall s, own cpu s, foreign cores, stdout lines)."""
    hz = os.sysconf("SC_CLK_TCK")
    own0, (b0, _) = children_cpu(), cpu_ticks()
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        p = subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE, stderr=log, text=True)
    wall = time.monotonic() - t0
    b1, _ = cpu_ticks()
    own = children_cpu() - own0
    foreign = max(0.0, (b1 - b0) / hz - own - TOLERANCE_S) / wall
    with open(log_path, "a") as log:
        log.write(p.stdout)
    return p.returncode, wall, own, foreign, p.stdout.splitlines()


def parse(line):
    """A bench line as (kind, fields), or None for anything else (comments, build noise)."""
    parts = line.split()
    if len(parts) < 2 or parts[0].startswith("#") or not all("=" in p for p in parts[1:]):
        return None
    return parts[0], dict(p.split("=", 1) for p in parts[1:])


def is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def aggregate(accepted, rejected, metrics):
    """accepted: list of stdout-line lists (one per accepted run of one side); returns the aggregated bench lines.

    A field is a metric when it is numeric and named in `metrics`; all other fields form the measurement's key."""
    values, order = {}, []
    for lines in accepted:
        for line in lines:
            got = parse(line)
            if got is None:
                continue
            kind, fields = got
            key = (kind,) + tuple((f, v) for f, v in fields.items() if f not in metrics)
            if key not in values:
                values[key] = {}
                order.append(key)
            for f, v in fields.items():
                if f in metrics and is_number(v):
                    values[key].setdefault(f, []).append(float(v))
    out = []
    for key in order:
        parts = [key[0]] + [f"{f}={v}" for f, v in key[1:]]
        n = 0
        for f, xs in values[key].items():
            n = len(xs)
            parts += [f"{f}={fmt(statistics.median(xs))}", f"{f}_min={fmt(min(xs))}", f"{f}_max={fmt(max(xs))}"]
        out.append(" ".join(parts + [f"runs={n}", f"rejected={rejected}"]))
    return out


def fmt(x):
    return f"{x:.4g}" if abs(x) < 100 else f"{x:.1f}"


def run_rounds(sides, out, rounds, foreign_max, retries, idle_busy, idle_wait, metrics):
    os.makedirs(out, exist_ok=True)
    accepted = {name: [] for name, _ in sides}
    rejected = {name: 0 for name, _ in sides}
    with open(os.path.join(out, "runs.jsonl"), "a") as runs:
        for r in range(rounds):
            for i in range(len(sides)):
                name, command = sides[(i + r) % len(sides)]  # rotated: A B, B A, ...
                for attempt in range(1, retries + 1):
                    idle = wait_idle(idle_busy, idle_wait)
                    log = os.path.join(out, f"{name}-r{r + 1}a{attempt}.log")
                    rc, wall, own, foreign, lines = run_once(command, log)
                    ok = rc == 0 and foreign <= foreign_max
                    runs.write(json.dumps(dict(side=name, round=r + 1, attempt=attempt, exit=rc, wall_s=wall,
                                               own_cpu_s=own, foreign_cores=foreign, idle=idle, accepted=ok,
                                               time=time.strftime("%Y-%m-%dT%H:%M:%S"))) + "\n")
                    runs.flush()
                    print(f"# round {r + 1} {name} attempt {attempt}: {wall:.1f}s wall, {own:.1f}s cpu, "
                          f"foreign {foreign:.3f} cores, {idle}: {'ok' if ok else 'REJECTED'}"
                          + ("" if rc == 0 else f" (exit {rc}, see {log})"), file=sys.stderr, flush=True)
                    if ok:
                        accepted[name].append(lines)
                        break
                    rejected[name] += 1
    result = []
    for name, _ in sides:
        if not accepted[name]:
            print(f"# {name}: no accepted run in {rounds} rounds", file=sys.stderr)
        result += aggregate(accepted[name], rejected[name], metrics)
    return result


METRICS = {"gflops", "tok_s", "ms", "loss", "val_loss", "wall_s", "pp_tok_s", "decode_tok_s", "load_s", "rss_mb",
           "read_gbs", "ms_per_step"}


def main(argv):
    out, sides, rounds = None, [], int(os.environ.get("ROUNDS", "5"))
    i = 0
    while i < len(argv):
        if argv[i] == "--out":
            out, i = argv[i + 1], i + 2
        elif argv[i] == "--rounds":
            rounds, i = int(argv[i + 1]), i + 2
        elif argv[i] == "--side":
            sides.append((argv[i + 1], argv[i + 2]))
            i += 3
        else:
            print(f"rounds.py: unknown argument {argv[i]!r}; expected --out, --rounds or --side", file=sys.stderr)
            return 2
    if not out or not sides or rounds < 1:
        print("rounds.py: need --out DIR, at least one --side NAME 'command', and ROUNDS >= 1", file=sys.stderr)
        return 2
    lines = run_rounds(sides, out, rounds, float(os.environ.get("FOREIGN_MAX", "0.10")),
                       int(os.environ.get("RETRIES", "4")), float(os.environ.get("IDLE_BUSY", "10")),
                       float(os.environ.get("IDLE_WAIT", "300")), METRICS)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def self_test():
    runs = [["# noise", "lm impl=a preset=dense threads=2 tok_s=10", "build ok"],
            ["lm impl=a preset=dense threads=2 tok_s=30"],
            ["lm impl=a preset=dense threads=2 tok_s=20"]]
    got = aggregate(runs, 1, METRICS)
    assert got == ["lm impl=a preset=dense threads=2 tok_s=20 tok_s_min=10 tok_s_max=30 runs=3 rejected=1"], got
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        lines = run_rounds([("a", "echo 'x impl=a k=1 ms=5'"), ("b", "echo 'x impl=b k=1 ms=7'")], d, 2, 99.0, 1,
                           100, 5, METRICS)
        assert lines == ["x impl=a k=1 ms=5 ms_min=5 ms_max=5 runs=2 rejected=0",
                         "x impl=b k=1 ms=7 ms_min=7 ms_max=7 runs=2 rejected=0"], lines
        order = [json.loads(x)["side"] for x in open(os.path.join(d, "runs.jsonl"))]
        assert order == ["a", "b", "b", "a"], order
        # a side that burns CPU in a process it does not wait for is someone else's load: rejected
        lines = run_rounds([("c", "(timeout 1.5 sh -c 'while :; do :; done' &) ; sleep 1.2; echo 'x impl=c k=1 ms=1'")],
                           d, 1, 0.3, 2, 100, 5, METRICS)
        assert lines == [], lines
    print("rounds.py self-test ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
