"""Join MoeSharp and PyTorch bench lines into markdown ratio tables.

Reads bench lines of the form `<kind> impl=<name> key=value ...` from the files given (or stdin, or `-`),
ignores every other line (build noise, `#` comments), and prints one markdown table per kind, joining lines on
all their fields except impl and the metrics; rows sorted by threads, then the other fields. The ratio columns are MoeSharp over each peer (>1: MoeSharp is
faster). Lines aggregated by rounds.py (`tok_s=MEDIAN tok_s_min=.. tok_s_max=.. runs=..`) show as `median [min, max]`,
and the ratios are ratios of medians. Later lines for the same (kind, impl, key) replace earlier ones.

Kinds understood:
    gemm impl=torch layout=NN m=1024 n=1024 k=1024 threads=1 gflops=74.1
    fma-peak threads=1 gflops=180.0            (adds a MoeSharp/peak column for the 1-thread gemm rows)
    moe impl=torch-sort pass=fwd T=2048 D=512 H=1024 E=8 K=2 threads=2 tok_s=12345 gflops=83.2
    lm impl=torch preset=dense phase=train threads=2 tok_s=4700

Run:  /usr/bin/python3 bench/peer/join.py moesharp.txt torch.txt     or     cat both | join.py
Self-test:  /usr/bin/python3 bench/peer/join.py --self-test
"""
import sys

BASE = "moesharp"
KINDS = {  # kind -> (metric, unit, fields merged into one "shape" column)
    "gemm": ("gflops", "GFLOP/s", ("m", "n", "k")),
    "moe": ("tok_s", "tok/s", ()),
    "lm": ("tok_s", "tok/s", ()),
}
METRICS = {"gflops", "tok_s", "ms", "loss", "runs", "rejected"}


def is_metric(field):
    """Metrics and the spread fields that rounds.py adds to each (tok_s_min, tok_s_max, runs, rejected)."""
    return field in METRICS or field.removesuffix("_min") in METRICS or field.removesuffix("_max") in METRICS


def parse(lines):
    """Return (rows, peaks): rows[kind][key] = {impl: {field: value}}, key = tuple of (field, value)."""
    rows, peaks = {}, {}
    for line in lines:
        parts = line.split()
        if not parts or not all("=" in p for p in parts[1:]):
            continue
        kind, fields = parts[0], dict(p.split("=", 1) for p in parts[1:])
        if kind == "fma-peak" and "threads" in fields and "gflops" in fields:
            peaks[fields["threads"]] = float(fields["gflops"])
        elif kind in KINDS and "impl" in fields and KINDS[kind][0] in fields:
            impl = fields.pop("impl")
            key = tuple((f, v) for f, v in fields.items() if not is_metric(f))
            rows.setdefault(kind, {}).setdefault(key, {})[impl] = fields
    return rows, peaks


def fmt(x, metric):
    return "–" if x is None else (f"{x:.1f}" if metric == "gflops" else f"{x:.0f}")


def cell(fields, metric):
    """The median as `value [min, max]` when rounds.py aggregated it, else the single value."""
    if fields is None:
        return "–"
    text = fmt(float(fields[metric]), metric)
    if f"{metric}_min" in fields:
        text += f" [{fmt(float(fields[metric + '_min']), metric)}, {fmt(float(fields[metric + '_max']), metric)}]"
    return text


def table(kind, by_key, peaks):
    metric, unit, shape = KINDS[kind]
    impls = []
    for per_impl in by_key.values():
        impls += [i for i in per_impl if i not in impls]
    impls.sort(key=lambda i: (i != BASE,))  # MoeSharp first, peers in order of appearance
    peers = [i for i in impls if i != BASE]
    key_fields = []
    for key in by_key:
        key_fields += [f for f, _ in key if f not in key_fields and f not in shape]
    head = (["shape"] if shape else []) + key_fields + [f"{i} {unit}" for i in impls]
    if BASE in impls:
        head += [f"{BASE}/{p}" for p in peers]
    with_peak = kind == "gemm" and "1" in peaks and BASE in impls
    if with_peak:
        head.append(f"{BASE}/peak (1 thread, peak {peaks['1']:.0f})")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    def order(item):  # threads first, then the other fields in their order, numbers numerically
        kd = dict(item[0])
        fs = ["threads"] + [f for f in key_fields if f != "threads"] + list(shape)
        return [(0, float(kd[f]), "") if kd.get(f, "").replace(".", "", 1).isdigit() else (1, 0, kd.get(f, ""))
                for f in fs]

    for key, per_impl in sorted(by_key.items(), key=order):
        kd = dict(key)
        cells = (["×".join(kd.get(f, "?") for f in shape)] if shape else []) + [kd.get(f, "") for f in key_fields]
        vals = {i: float(per_impl[i][metric]) if i in per_impl else None for i in impls}
        cells += [cell(per_impl.get(i), metric) for i in impls]
        if BASE in impls:
            b = vals[BASE]
            cells += ["–" if b is None or not vals[p] else f"{b / vals[p]:.2f}×" for p in peers]
        if with_peak:
            ok = kd.get("threads") == "1" and vals[BASE] is not None
            cells.append(f"{vals[BASE] / peaks['1']:.0%}" if ok else "–")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def render(lines):
    rows, peaks = parse(lines)
    parts = []
    if peaks:
        parts.append("FMA peak (MoeSharp, same run): " +
                     ", ".join(f"{t} thread(s) {g:.0f} GFLOP/s" for t, g in sorted(peaks.items())))
    for kind in KINDS:
        if kind in rows:
            parts.append(f"### {kind}\n\n" + table(kind, rows[kind], peaks))
    return "\n\n".join(parts)


def self_test():
    fake = """\
  Determining projects to restore...
fma-peak threads=1 gflops=180.0
fma-peak threads=2 gflops=350.0
gemm impl=moesharp layout=NN m=1024 n=1024 k=1024 threads=1 gflops=120.0
gemm impl=moesharp layout=NN m=1024 n=1024 k=1024 threads=2 gflops=230.0
gemm impl=moesharp layout=NT m=2048 n=512 k=1024 threads=1 gflops=90.0
# torch 1.13
gemm impl=torch layout=NN m=1024 n=1024 k=1024 threads=1 gflops=80.0
gemm impl=torch layout=NN m=1024 n=1024 k=1024 threads=2 gflops=115.0
gemm impl=torch layout=TN m=512 n=1024 k=2048 threads=1 gflops=70.0
moe impl=moesharp pass=fwd T=2048 D=512 H=1024 E=8 K=2 threads=2 tok_s=26200 gflops=166.0
moe impl=torch-hf-loop pass=fwd T=2048 D=512 H=1024 E=8 K=2 threads=2 tok_s=12300 gflops=78.0
moe impl=torch-sort pass=fwd T=2048 D=512 H=1024 E=8 K=2 threads=2 tok_s=13100 gflops=83.2
lm impl=moesharp preset=dense phase=train threads=2 tok_s=9400
lm impl=torch preset=dense phase=train threads=2 tok_s=4700
"""
    rows, peaks = parse(fake.splitlines())
    assert peaks == {"1": 180.0, "2": 350.0}
    g = rows["gemm"]
    assert len(g) == 4, g.keys()
    nn1 = (("layout", "NN"), ("m", "1024"), ("n", "1024"), ("k", "1024"), ("threads", "1"))
    assert set(g[nn1]) == {"moesharp", "torch"}
    text = render(fake.splitlines())
    lines = text.splitlines()
    assert "| 1024×1024×1024 | NN | 1 | 120.0 | 80.0 | 1.50× | 67% |" in lines, text
    assert "| 1024×1024×1024 | NN | 2 | 230.0 | 115.0 | 2.00× | – |" in lines, text
    assert "| 2048×512×1024 | NT | 1 | 90.0 | – | – | 50% |" in lines, text
    assert "| 512×1024×2048 | TN | 1 | – | 70.0 | – | – |" in lines, text
    assert "| fwd | 2048 | 512 | 1024 | 8 | 2 | 2 | 26200 | 12300 | 13100 | 2.13× | 2.00× |" in lines, text
    assert "| dense | train | 2 | 9400 | 4700 | 2.00× |" in lines, text
    spread = render(["lm impl=moesharp preset=dense phase=train threads=2 tok_s=9400 tok_s_min=9000 tok_s_max=9900 runs=5 rejected=1",
                     "lm impl=torch preset=dense phase=train threads=2 tok_s=4700 tok_s_min=4600 tok_s_max=5000 runs=5 rejected=0"])
    assert "| dense | train | 2 | 9400 [9000, 9900] | 4700 [4600, 5000] | 2.00× |" in spread.splitlines(), spread
    print(text)
    print("\njoin.py self-test ok")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--self-test"]:
        self_test()
        sys.exit(0)
    lines = []
    for a in args or ["-"]:
        lines += (sys.stdin if a == "-" else open(a)).read().splitlines()
    print(render(lines))
