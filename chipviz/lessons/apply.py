"""Applying a step to a training session: its settings, a fresh network when needed, the GEMM
and cycle to show, the controls to hide and lock."""
from __future__ import annotations

from dataclasses import dataclass

from .common import notice
from .measures import find_op, op_label
from .model import Lesson, Step


@dataclass
class Applied:
    """What apply_step did: the GEMM to show (index in the session's last step), the cycle,
    the controls to hide and lock, and notices for anything it had to change."""

    op: int | None
    cycle: int | None
    hide: list[str]
    lock: list[str]
    notices: list  # Messages
    rebuilt: bool


def apply_step(step: Step, session, lesson: Lesson | None = None, extra_hide=(), extra_lock=()) -> Applied:
    """Put `session` in the state `step` sets: settings (validated at parse time), a fresh network
    trained `train_steps` steps when the step asks for it or when any setting changed; then
    find the GEMM and cycle to show; notices are Messages (the page renders them in its language).
    Safe headless (no panel)."""
    session.pause()
    changed = session.apply(step.settings, announce=False)  # the one path: widgets, URL and views follow
    rebuilt = False
    if changed or step.view.train_steps:
        session.build()  # a fresh, deterministic network, as the lesson's numbers assume
        session.step(step.view.train_steps or 1)
        rebuilt = True
    elif not session.operations():
        session.step()
    notices = []
    ops = session.operations()
    index = None
    if step.view.op:
        index = find_op(ops, step.view.op)
        if index is None:
            notices.append(notice("op_missing", op=op_label(step.view.op)))
    if index is None:
        index = next((i for i, op in enumerate(ops) if op.is_gemm), None)
    cycle = step.view.cycle
    if cycle is not None and index is not None:
        total = ops[index].stats.cycles
        if cycle >= total:
            notices.append(notice("cycle_clamped", cycle=cycle, total=total))
            cycle = total - 1
    hide = sorted(set(lesson.hide if lesson else ()) | set(step.view.hide) | set(extra_hide))
    lock = sorted(set(lesson.lock if lesson else ()) | set(step.view.lock) | set(extra_lock))
    return Applied(index, cycle, hide, lock, notices, rebuilt)
