"""Who gets an alert from a call list, and what the list remembers afterwards.

Pure: `resolve()` takes the list's stored state and `now` and returns the
recipients plus the state to store; the caller does the locking and writing
(state/calllist/<name>.json). Survivor 1.0 semantics:

* simple lists hand each notification to the next member (round robin per
  notification, not per problem);
* broadcast lists notify every member and keep no position;
* rotating lists have one person on call, advanced once per `at` time of the
  rotation schedule that passed since the last rotation, so periods missed
  while the daemon was down are still counted.

The state remembers *persons*, not positions, so reordering the members in the
config keeps the right person; if the remembered person was removed, the list
continues with the member that followed them before. Substitutions replace the
chosen person until they expire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from survivor.clock import utc_iso
from survivor.errors import SurvivorError
from survivor.model.config import AlertMethod, CallList, Person, Schedule
from survivor.model.documents import CallListState, Recipient, Substitution
from survivor.schedule import at_occurrences


class SubstitutionError(SurvivorError, ValueError):
    """A substitution the operator asked for cannot be applied to the list."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """What `resolution()` found: recipients, the state to store, and why anyone was skipped."""

    recipients: tuple[Recipient, ...]
    state: CallListState
    skipped: tuple[str, ...] = ()  # "bob has no address for page"
    rotated: int = 0  # rotation steps taken now (for the call list history)


def state_name(calllist: CallList) -> str:
    """The name of the state file a list uses: an alias shares its target's."""
    return calllist.alias_of or calllist.name


def resolve(
    calllist: CallList,
    state: CallListState | None,
    people: Mapping[str, Person],
    methods: Mapping[str, AlertMethod],
    *,
    rotation_schedule: Schedule | None,
    tz: tzinfo,
    now: datetime,
    target: CallList | None = None,
) -> tuple[list[Recipient], CallListState]:
    """Recipients of one notification through `calllist`, and the list's next state.

    For an alias list pass the aliased list as `target` (its members and
    rotation apply; the alias's own `via` is used) and the target's state.
    """
    res = resolution(
        calllist,
        state,
        people,
        methods,
        rotation_schedule=rotation_schedule,
        tz=tz,
        now=now,
        target=target,
    )
    return list(res.recipients), res.state


def resolution(
    calllist: CallList,
    state: CallListState | None,
    people: Mapping[str, Person],
    methods: Mapping[str, AlertMethod],
    *,
    rotation_schedule: Schedule | None,
    tz: tzinfo,
    now: datetime,
    target: CallList | None = None,
) -> Resolution:
    """`resolve()` with the details: who was skipped and why, and how far the list rotated."""
    shape = target if calllist.alias_of is not None and target is not None else calllist
    members = shape.members
    state = (state or CallListState()).prune(now)
    if not members:
        return Resolution((), state, (f"call list {calllist.name} has no members",))
    chooser = _Chooser(calllist, members, state.substitutions, people, methods, now)
    if shape.broadcast:
        return Resolution(
            chooser.everyone(), replace(state, members=members), tuple(chooser.skipped)
        )
    if shape.rotate is not None:
        if rotation_schedule is None:
            raise ValueError(
                f"call list {calllist.name} rotates using schedule {shape.rotate!r}, "
                "which was not given"
            )
        on_call, last_rotation, steps = _rotate(members, state, rotation_schedule, tz=tz, now=now)
        got = chooser.first_reachable_from(on_call)
        new = replace(state, on_call=on_call, last_rotation=last_rotation, members=members)
        return Resolution(_opt(got), new, tuple(chooser.skipped), steps)
    nxt = _next_member(members, state.members, state.last_notified)
    got = chooser.first_reachable_from(nxt)
    notified = state.last_notified if got is None else got[1]
    new = replace(state, last_notified=notified, members=members)
    return Resolution(_opt(got), new, tuple(chooser.skipped))


def _opt(got: tuple[Recipient, str] | None) -> tuple[Recipient, ...]:
    return () if got is None else (got[0],)


def _rotate(
    members: tuple[str, ...],
    state: CallListState,
    schedule: Schedule,
    *,
    tz: tzinfo,
    now: datetime,
) -> tuple[str, datetime, int]:
    """(on-call person, last rotation, steps taken) for a rotating list at `now`."""
    if state.on_call is None:
        return members[0], now, 0  # first use: rotation starts now, at the top
    current = _current_member(members, state.members, state.on_call)
    if state.last_rotation is None:
        return current, now, 0  # on-call set by hand: rotation counts from now
    steps = 0
    if now > state.last_rotation:
        steps = at_occurrences(schedule, state.last_rotation, now, tz)
    if steps == 0:
        return current, state.last_rotation, 0
    on_call = members[(members.index(current) + steps) % len(members)]
    return on_call, now, steps


def _current_member(members: Sequence[str], old_members: Sequence[str], person: str) -> str:
    """`person` if still a member, else the member that followed them before, else the first."""
    if person in members:
        return person
    if person in old_members:
        i = list(old_members).index(person)
        rest = list(old_members[i + 1 :]) + list(old_members[:i])
        for candidate in rest:
            if candidate in members:
                return candidate
    return members[0]


def _next_member(members: Sequence[str], old_members: Sequence[str], last: str | None) -> str:
    """The member after `last`; for a removed `last`, the one who followed them before."""
    if last is None:
        return members[0]
    if last in members:
        return members[(list(members).index(last) + 1) % len(members)]
    return _current_member(members, old_members, last)


class _Chooser:
    """Turns chosen members into recipients: substitutions, addresses, skip reasons."""

    def __init__(
        self,
        calllist: CallList,
        members: tuple[str, ...],
        substitutions: tuple[Substitution, ...],
        people: Mapping[str, Person],
        methods: Mapping[str, AlertMethod],
        now: datetime,
    ) -> None:
        self.calllist = calllist
        self.members = members
        self.substitutions = substitutions
        self.people = people
        self.method_known = calllist.via in methods
        self.now = now
        self.skipped: list[str] = []

    def receiver(self, member: str) -> str:
        """Who receives for `member`: the first active substitute, else the member."""
        for sub in self.substitutions:
            if sub.for_person == member and sub.active(self.now):
                return sub.person
        return member

    def recipient(self, member: str) -> Recipient | None:
        via = self.calllist.via
        if not self.method_known:
            self.skipped.append(f"{member}: alert method {via} is not defined")
            return None
        name = self.receiver(member)
        person = self.people.get(name)
        if person is None:
            self.skipped.append(f"{name} is not a defined person")
            return None
        address = person.address_for(via)
        if address is None:
            self.skipped.append(f"{name} has no address for {via}")
            return None
        return Recipient(name, address, via, self.calllist.name)

    def first_reachable_from(self, member: str) -> tuple[Recipient, str] | None:
        """The recipient for `member`, or for the next member who can be reached.

        Returns it with the member it stands for, so a simple list continues
        its round robin from whoever was actually notified.
        """
        start = self.members.index(member)
        for k in range(len(self.members)):
            candidate = self.members[(start + k) % len(self.members)]
            got = self.recipient(candidate)
            if got is not None:
                return got, candidate
        return None

    def everyone(self) -> tuple[Recipient, ...]:
        seen: set[str] = set()
        out: list[Recipient] = []
        for member in self.members:
            got = self.recipient(member)
            if got is not None and got.person not in seen:
                seen.add(got.person)
                out.append(got)
        return tuple(out)


def with_substitution(
    state: CallListState | None,
    sub: Substitution,
    calllist: CallList,
    people: Mapping[str, Person],
    *,
    now: datetime,
    target: CallList | None = None,
) -> CallListState:
    """The state with `sub` added and expired ones dropped; SubstitutionError says why not."""
    shape = target if calllist.alias_of is not None and target is not None else calllist
    if sub.for_person not in shape.members:
        raise SubstitutionError(
            f"call list {calllist.name}: {sub.for_person} is not a member "
            f"(members: {', '.join(shape.members) or 'none'})"
        )
    person = people.get(sub.person)
    if person is None:
        raise SubstitutionError(f"call list {calllist.name}: {sub.person} is not a defined person")
    if person.address_for(calllist.via) is None:
        raise SubstitutionError(
            f"call list {calllist.name}: {sub.person} has no address for {calllist.via}"
        )
    if sub.person == sub.for_person:
        raise SubstitutionError(f"call list {calllist.name}: {sub.person} cannot replace themself")
    if not sub.active(now):
        raise SubstitutionError(
            f"call list {calllist.name}: substitution ends {utc_iso(sub.until)}, which is past"
        )
    base = (state or CallListState()).prune(now)
    return replace(base, substitutions=(*base.substitutions, sub))
