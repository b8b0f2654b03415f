"""The training run's output directory (--out): made, and locked for one run at a time;
refused if it holds another run's files, unless --overwrite, whose old run is set aside until
the new run has saved (``Trainer._save``), and put back if it has not, also after a kill."""

import os
import time
from pathlib import Path

from . import cli, files
from .checkpoint import ASIDE, BEST, CHECKPOINT

METRICS, PLOT = "metrics.jsonl", "loss.png"  # (and checkpoint.CHECKPOINT, checkpoint.BEST)
OUTPUTS = (CHECKPOINT, BEST, METRICS, PLOT)  # what a run writes in --out (and --overwrite
                                             # sets aside), besides its lock and temporaries
LOCK_PID_WAITS = 50  # a run refused --out waits up to this many 10 ms for its holder's pid


def prepare(args, ckpt, say):
    """The run's --out (default ./out, or the resumed checkpoint's directory), made if need
    be, checked (``_check``) and locked for this run: a UsageError naming what is wrong,
    and then the directory as it was."""
    out = Path(args.out) if args.out else Path(args.resume).parent if ckpt else Path("out")
    try:
        exists = out.exists()
        if not exists and out.is_symlink():  # (its target missing, or links in a loop)
            raise cli.UsageError(f"output directory {out} is a symbolic link to no directory "
                                 f"({os.readlink(out)}): remove it or pass another --out")
        if exists and not out.is_dir():
            raise cli.UsageError(f"output directory {out} exists and is not a directory")
    except OSError as e:  # (a name too long, a permission)
        raise cli.UsageError(f"cannot use output directory {out}: {e.strerror or e}") from None
    args.made_out = not exists  # (a run that trains nothing removes it again)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{id(out)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:  # (a resume writes beside its checkpoint unless told otherwise)
        hint = "; --out DIR writes the resumed run elsewhere" if ckpt and not args.out else ""
        raise cli.UsageError(f"cannot write to output directory {out}: {e.strerror or e}"
                             f"{hint}") from None
    had_lock_file = (out / files.LOCK).exists()
    try:  # held until the run returns: no other run writes here meanwhile
        args.lock = files.lock(out)
    except files.Locked as e:
        pid = e.args[0]
        for _ in range(LOCK_PID_WAITS):  # (its holder writes it once it has checked --out;
            if pid and files.alive(pid):  # until then the file may hold a killed run's)
                break
            time.sleep(0.01)
            pid = files.holder(out)
        holder = f" (pid {pid})" if pid and files.alive(pid) else ""
        raise cli.UsageError(f"{out} is in use by another fastrnn.train run{holder}: wait for "
                             f"it to end, or pass another --out") from None
    except OSError as e:
        why = "a symbolic link" if (out / files.LOCK).is_symlink() else e.strerror or str(e)
        raise cli.UsageError(f"cannot lock output directory {out}: {out / files.LOCK}: {why} "
                             f"(remove it if no fastrnn.train run is using {out})") from None
    try:
        _check(args, ckpt, out, say)
    except BaseException:  # refused: the directory as it was
        settle_aside(args, out)
        if had_lock_file and args.lock is not None:
            args.lock.close()
        else:
            files.unlock(args.lock, out)
        raise
    files.claim(args.lock)
    return out


def _check(args, ckpt, out, say):
    """Refuse an --out holding another run's checkpoints or log (unless --overwrite); then
    clear what a killed writer (its temporaries) or an overwritten run left there."""
    def held(name):  # (a log without records: a run that stopped before its first, diverged)
        path = out / name
        return path.exists() and (name != METRICS or path.stat().st_size > 0)

    _put_back_killed(args, out, say)
    for name in OUTPUTS:  # (found now, not at the first write)
        kind = files.unwritable(out / name)
        if kind:
            raise cli.UsageError(f"{out / name} is {kind}: the run's outputs are regular files "
                                 f"in --out; remove it, or pass another --out")
    if ckpt is None:
        source = Path(args.init_from).resolve() if args.init_from else None
        if source in [(out / name).resolve() for name in (CHECKPOINT, BEST)]:
            raise cli.UsageError(f"--init-from {args.init_from} is in --out {out}, whose old "
                                 f"files a new run replaces: pass another --out (or copy it "
                                 f"elsewhere)")
        if held(CHECKPOINT) and not args.overwrite:
            raise cli.UsageError(f"{out / CHECKPOINT} already exists: continue it with --resume "
                                 f"{cli.quoted(out / CHECKPOINT)}, or pass --overwrite or "
                                 f"another --out")
        if held(BEST) and not args.overwrite:  # (a run killed before its first checkpoint)
            raise cli.UsageError(f"{out / BEST} (a run's best model) already exists: continue "
                                 f"it with --resume {cli.quoted(out / BEST)}, or pass "
                                 f"--overwrite (which sets it aside, removed once the new run "
                                 f"saves) or another --out")
        if held(METRICS) and not args.overwrite:
            raise cli.UsageError(f"{out / METRICS} (another run's log) already exists: pass "
                                 f"--overwrite or another --out")
        if args.overwrite:
            _set_aside(args, out, held)
    elif not out.samefile(Path(args.resume).parent):
        for name in (CHECKPOINT, BEST, METRICS):  # another run's, in another directory
            if held(name) and not args.overwrite:
                raise cli.UsageError(f"{out / name} is not the resumed run's ({args.resume}) "
                                     f"and would be replaced: pass another --out, or "
                                     f"--overwrite")
        if args.overwrite:
            _set_aside(args, out, held)
    elif (out / CHECKPOINT).exists() and not args.overwrite and \
            not (out / CHECKPOINT).samefile(args.resume):
        raise cli.UsageError(f"{out / CHECKPOINT} is not the checkpoint resumed ({args.resume}) "
                             f"and would be replaced: pass another --out, or --overwrite")
    files.remove_stale_temporaries(out, OUTPUTS)


def _set_aside(args, out, held):
    """--overwrite of a run in --out: its files (``OUTPUTS``) are renamed NAME + ASIDE, to
    go when this run writes a checkpoint or best model of its own (``Trainer._save``), or
    come back (``settle_aside``) if it ends before (diverging at once, a failed write): not
    lost to a run that saved nothing, nor mixed with its files. One that cannot be set aside
    refuses the run, what was moved put back first."""
    args.overwritten = []
    for name in OUTPUTS:
        if held(name):
            try:
                os.replace(out / name, out / (name + ASIDE))
            except OSError as e:
                for moved in args.overwritten:  # (the refused run made nothing: all back;
                    try:                            # else the next run puts it back)
                        os.replace(out / (moved + ASIDE), out / moved)
                    except OSError:
                        pass
                args.overwritten = []
                raise cli.UsageError(f"cannot set {out / name} aside (--overwrite): "
                                     f"{e.strerror or e}") from None
            args.overwritten.append(name)


def settle_aside(args, out):
    """What ``_set_aside`` set aside: removed once the run that replaces it has a checkpoint
    or best model of its own (its first save; or, as the run returns, a save a Ctrl-C cut
    short once its file was in place), else put back in place (diverging, refused, a second
    Ctrl-C), its log and picture first removed."""
    aside, args.overwritten = getattr(args, "overwritten", []), []
    if not aside:
        return
    # (a checkpoint or best model here is this run's: the old run's were set aside)
    saved = any(os.path.lexists(out / name) for name in (CHECKPOINT, BEST))
    if not saved:
        _remove_unsaved(out, aside)
    for name in _removal_order(aside):
        if saved:
            _remove(out / (name + ASIDE))
        else:
            try:
                os.replace(out / (name + ASIDE), out / name)
            except OSError:  # (gone with --out, removed during the run)
                pass


def _removal_order(names):
    """Set-aside files in the order to remove them: the checkpoint last, so that one killed
    part-way leaves the old run's checkpoint, if any of it."""
    return [name for name in reversed(OUTPUTS) if name in names]


def _remove_unsaved(out, asides):
    """The log and picture of a run that saved nothing, where no file of the old run set aside
    (``asides``) is to take their place: they would pass for the old run's."""
    for name in (METRICS, PLOT):
        if name not in asides:
            _remove(out / name)


def _remove(path):
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _put_back_killed(args, out, say):
    """Put back what an --overwrite run killed before it saved left aside (its place is free:
    that run wrote no checkpoint or best model; its log and picture give way), so that --out
    holds the old run again, which the rules that follow then protect. A --resume of a file
    set aside resumes it where it is put back."""
    asides = [name for name in OUTPUTS if os.path.lexists(out / (name + ASIDE))]
    if not asides:
        return
    for name in asides:
        aside = out / (name + ASIDE)
        if aside.is_symlink() or not aside.is_file():
            raise cli.UsageError(f"{aside} is not a regular file: remove it, or pass another "
                                 f"--out")
    if any(os.path.lexists(out / name) for name in (CHECKPOINT, BEST)):
        clash = [str(out / (name + ASIDE)) for name in asides]
        raise cli.UsageError(f"{', '.join(clash)} (set aside by an --overwrite run) and that "
                             f"run's own checkpoint or best model are both in {out}: it saved, "
                             f"and was killed before it removed them; remove them, or the "
                             f"run's own files")
    sources = {key: Path(getattr(args, key)).absolute() if getattr(args, key) else None
               for key in ("resume", "init_from")}
    _remove_unsaved(out, asides)  # (the killed run's)
    for name in asides:
        try:
            os.replace(out / (name + ASIDE), out / name)
        except OSError as e:
            raise cli.UsageError(f"cannot put {out / (name + ASIDE)} back: "
                                 f"{e.strerror or e}") from None
        for key, source in sources.items():  # (--resume or --init-from of a file set aside)
            if source == (out / (name + ASIDE)).absolute():
                setattr(args, key, str(out / name))
    say(f"note: put back in {out}: {', '.join(asides)}, set aside by an --overwrite run "
               f"that was killed before it saved")
