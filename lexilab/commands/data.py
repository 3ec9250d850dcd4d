"""`python -m lexilab data list|check|fetch|pin`: what data is available, is it intact, get it.

The data root is ``--root``, else ``$LEXILAB_DATA``, else ``../shared/data`` relative to the
current folder when that exists.
"""
from __future__ import annotations

import time
from pathlib import Path

from lexilab.data import leakage, manifests
from lexilab.data.registry import DATASETS, SPLITS, _import_builtin_datasets, load_dataset
from lexilab.errors import LexilabError
from lexilab.io import atomic_write_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="list, check and fetch datasets",
                                   description="Named datasets: list, check (manifests, counts, leakage), fetch.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True

    p = sub.add_parser("list", help="datasets, their kind, and whether their files are at the root")
    p.add_argument("--root", type=Path, help="data root (default: $LEXILAB_DATA or ../shared/data)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="verify manifests, row counts, label sets, and report leakage")
    p.add_argument("--root", type=Path, help="data root (default: $LEXILAB_DATA or ../shared/data)")
    p.add_argument("--datasets", nargs="+", metavar="NAME", help="default: every dataset with pinned files")
    p.add_argument("--no-leakage", action="store_true", help="skip the leakage check")
    p.add_argument("--threshold", type=float, default=0.8, help="near-duplicate Jaccard threshold (0.8)")
    p.add_argument("--min-tokens", type=int, default=4, help="skip texts with fewer words (4)")
    p.add_argument("--pairs", type=int, default=10, help="leaking pairs to print (10)")
    p.add_argument("--policy", choices=leakage.POLICIES, default="warn",
                   help="fail: exit 1 when a train text duplicates an evaluation text")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the full report as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("fetch", help="download a dataset's public originals (sha256-verified)")
    p.add_argument("names", nargs="+", metavar="NAME", help="dataset or data folder (e.g. flan_t5_tokenizer)")
    p.add_argument("--to", type=Path, required=True, help="data root to place the files under")
    p.add_argument("--base-url", help="mirror laid out like the data root: <URL>/<folder>/<file>")
    p.add_argument("--rewrite", action="append", default=[], metavar="FROM=TO",
                   help="replace an upstream URL prefix (repeatable)")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("pin", help="(maintainers) rewrite dataset manifests from the files at the root")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--root", type=Path)
    p.set_defaults(func=cmd_pin)


def resolve_root(root: Path | None, required: bool = True) -> Path | None:
    if root is not None:
        return root
    found = manifests.default_root()
    if found is None and required:
        raise LexilabError(f"no data root: pass --root DIR or set {manifests.ENV_ROOT}")
    return found


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _presence(root: Path | None, files: tuple[str, ...]) -> str:
    if not files:
        return "-"
    if root is None:
        return "no root"
    have = sum((root / f).is_file() for f in files)
    return "yes" if have == len(files) else "no" if have == 0 else f"partial {have}/{len(files)}"


def cmd_list(args) -> int:
    _import_builtin_datasets()
    root = resolve_root(args.root, required=False)
    print(f"data root: {root if root is not None else '(none: pass --root or set ' + manifests.ENV_ROOT + ')'}")
    rows = []
    for name in sorted(DATASETS):
        entry = DATASETS[name]
        folders = sorted({f.split('/', 1)[0] + "/" for f in entry.files})
        rows.append([name, entry.kind, _presence(root, entry.files), ", ".join(folders) or "(per spec)",
                     entry.description])
    print(table(["name", "kind", "files", "where", "description"], rows))
    used = {f.split("/", 1)[0] for e in DATASETS.values() for f in e.files}
    extra = sorted({rel.split("/", 1)[0] for rel in manifests.file_table()} - used)
    if extra:
        print("other fetchable folders: " + ", ".join(
            f"{folder} ({_presence(root, tuple(r for r in manifests.file_table() if r.startswith(folder + '/')))})"
            for folder in extra))
    return 0


def _selected(names: list[str] | None) -> list[str]:
    _import_builtin_datasets()
    if names:
        for name in names:
            if name not in DATASETS:
                from lexilab.data.registry import get_entry
                get_entry(name)  # raises with a suggestion
        return names
    return sorted(n for n, e in DATASETS.items() if e.files)


def cmd_check(args) -> int:
    root = resolve_root(args.root)
    print(f"data root: {root}")
    loaded, rows, failed = [], [], 0
    for name in _selected(args.datasets):
        start = time.perf_counter()
        try:
            ds = load_dataset(name, root)
        except LexilabError as err:
            failed += 1
            rows.append([name, "FAILED", "", "", "", "", "", str(err)])
            continue
        loaded.append(ds)
        filtered = sum(v for k, v in ds.report.items() if not k.startswith("truncated"))
        rows.append([name, ds.kind, *(str(len(ds.splits[s])) for s in SPLITS),
                     str(len(ds.label_names)) if ds.label_names else "-",
                     f"ok ({time.perf_counter() - start:.1f}s; {filtered} filtered)"])
    print(table(["dataset", "kind", *SPLITS, "labels", "manifest"], rows))
    result = {"root": str(root), "datasets": {d.name: {"counts": manifests.split_counts(d), "files": d.files,
                                                         "report": d.report} for d in loaded}}
    exit_code = 1 if failed else 0
    if loaded and not args.no_leakage:
        start = time.perf_counter()
        report = leakage.find_leaks(loaded, threshold=args.threshold, min_tokens=args.min_tokens)
        print()
        print(report.summary())
        print(f"  ({time.perf_counter() - start:.1f}s)")
        for pair in report.leaks()[: args.pairs]:
            a, b = pair["a"], pair["b"]
            print(f"  {pair['kind']:<5} {pair['similarity']:.2f}  {a['dataset']}/{a['split']}:{a['id']} [{a['field']}]"
                  f"  ~  {b['dataset']}/{b['split']}:{b['id']} [{b['field']}]")
        result["leakage"] = report.to_dict()
        if args.policy == "fail" and report.total("train-eval"):
            print("lexilab: leakage found and --policy fail: exit status 1")
            exit_code = 1
    if args.json:
        atomic_write_json(args.json, result)
        print(f"report written to {args.json}")
    return exit_code


def cmd_fetch(args) -> int:
    from lexilab.data.fetch import fetch

    url_map = {}
    for item in args.rewrite:
        if "=" not in item:
            raise LexilabError(f"--rewrite {item!r}: expected FROM=TO")
        source, target = item.split("=", 1)
        url_map[source] = target
    for name in args.names:
        print(f"fetching {name} into {args.to}")
        paths = fetch(name, args.to, base_url=args.base_url, url_map=url_map, retries=args.retries,
                      timeout=args.timeout, log=print)
        print(f"{name}: {len(paths)} file(s) in place and verified")
    return 0


def cmd_pin(args) -> int:
    root = resolve_root(args.root)
    for name in args.names:
        ds = load_dataset({"name": name, "check_counts": False}, root)
        print(f"{name}: wrote {manifests.pin(ds)}")
    return 0
