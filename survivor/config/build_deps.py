"""Build the `dependencies:` section: which checks wait on which, with cycles refused.

A dependency names checks (`all`, less any `except:`) on hosts or groups and the
check they depend on, `on: check` or `on: check@host`; a `run_first` one (Type II)
needs the host. Within each type, a check that depends on itself or a cycle of
checks is reported with the checks on it. Dependencies select hosts the way checks
do (`build_hosts.select_hosts`); `build_hosting` builds them last, once every check
exists.
"""

from __future__ import annotations

from survivor.config.build_hosts import RESERVED, Hosting, select_hosts, selection
from survivor.config.fields import Context, Fields, check_reference
from survivor.config.load import Entry
from survivor.model.config import Dependency, Mark
from survivor.model.names import is_safe_name

DEPENDENCY_KEYS = frozenset(("checks", "except", "hosts", "groups", "on", "run_first"))


# --------------------------------------------------------------------------- dependencies


def _dependency_checks(ctx: Context, f: Fields) -> frozenset[str]:
    checks = ctx.raw.sections["checks"]
    if f.get("checks") == RESERVED:
        excluded = set()
        for name, line in f.names("except", "check"):
            if check_reference(ctx, name, checks, "check", f.what, f.file, line):
                excluded.add(name)
        return frozenset(name for name in checks if name not in excluded)
    if "except" in f:
        f.bad("except", "applies only with checks: all")
    found = set()
    for name, line in f.names("checks", "check", required=True):
        if check_reference(ctx, name, checks, "check", f.what, f.file, line):
            found.add(name)
    return frozenset(found)


def _dependency_hosts(ctx: Context, out: Hosting, f: Fields) -> frozenset[str]:
    if "hosts" not in f and "groups" not in f:
        ctx.error(f.file, f.head, f"{f.what}: give hosts: (names or all) and/or groups:")
        return frozenset()
    hosts: set[str] = set()
    if "hosts" in f:
        hosts.update(select_hosts(ctx, out, f.names("hosts", "host"), f.what, f.file))
    for group, line in f.names("groups", "group"):
        if check_reference(ctx, group, ctx.raw.sections["groups"], "group", f.what, f.file, line):
            hosts.update(selection(out, group) or ())
    return frozenset(hosts)


def _dependency(ctx: Context, out: Hosting, entry: Entry, index: int) -> Dependency | None:
    what = f"dependency {index + 1}"
    f = ctx.fields(entry.value, what, DEPENDENCY_KEYS, entry.file, entry.line)
    if f is None:
        return None
    checks = _dependency_checks(ctx, f)
    hosts = _dependency_hosts(ctx, out, f)
    run_first = f.flag("run_first")
    target = f.text("on", required=True)
    if target is None:
        return None
    on_check, at, on_host = target.partition("@")
    line = f.line("on")
    ok = check_reference(ctx, on_check, ctx.raw.sections["checks"], "check", what, f.file, line)
    if at:
        if not is_safe_name(on_host):
            ok = ctx.safe_name(on_host, "host", f.file, line)
        elif on_host not in out.hosts:
            ctx.error(
                f.file,
                line,
                f"{what}: on: host {on_host!r} is not defined: list it under hosts: "
                "(it need not be in a class)",
            )
            ok = False
    if run_first and not at:
        f.bad("on", f"run_first needs a host to run {on_check!r} on: write on: {on_check}@HOST")
        ok = False
    if not ok:
        return None
    return Dependency(
        checks, hosts, on_check, on_host if at else None, run_first, Mark(entry.file, entry.line)
    )


def build_dependencies(ctx: Context, out: Hosting) -> None:
    """Every dependency into `out.dependencies`; then each kind is checked for cycles."""
    built = []
    for index, entry in enumerate(ctx.raw.dependencies):
        dependency = _dependency(ctx, out, entry, index)
        if dependency is not None:
            built.append(dependency)
    out.dependencies = tuple(built)
    for run_first in (False, True):
        _find_cycles(ctx, [d for d in built if d.run_first is run_first], run_first)


def _find_cycles(ctx: Context, dependencies: list[Dependency], run_first: bool) -> None:
    """Report self-dependencies and cycles in the check graph of one dependency type."""
    kind = "Type II (run_first)" if run_first else "Type I"
    edges: dict[str, dict[str, Mark]] = {}
    for dependency in dependencies:
        for check in sorted(dependency.checks):
            if check == dependency.on_check:
                ctx.error(
                    dependency.mark.file,
                    dependency.mark.line,
                    f"{kind} dependency: check {check!r} depends on itself (add except: [{check}])",
                )
                continue
            edges.setdefault(check, {}).setdefault(dependency.on_check, dependency.mark)
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    for start in sorted(edges):
        if start in state:
            continue
        path = [start]
        todo = [iter(sorted(edges.get(start, {})))]
        state[start] = 1
        while todo:
            following = next(todo[-1], None)
            if following is None:
                state[path.pop()] = 2
                todo.pop()
                continue
            if state.get(following) == 1:
                cycle = [*path[path.index(following) :], following]
                mark = edges[path[-1]][following]
                ctx.error(
                    mark.file,
                    mark.line,
                    f"{kind} dependencies form a cycle: {' -> '.join(cycle)}",
                )
            elif following not in state:
                state[following] = 1
                path.append(following)
                todo.append(iter(sorted(edges.get(following, {}))))
