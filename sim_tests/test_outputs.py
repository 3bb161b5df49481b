"""Output folders and files: written whole or not at all, even when interrupted or when the
file system refuses; unexpected failures become one line and a log file, never a traceback."""
import os
import re
import signal
import subprocess
import sys
import tempfile

import pytest

import badinput
from corpus_outputs import CANARY, canary, tiny_model
from qloom import cli, outputs


def leftovers(folder):
    return [p.name for p in folder.rglob("*") if ".qloom-" in p.name and p.name != ".qloom-output"]


INTERRUPTED = """
import os, signal, sys
from qloom import cli, report
# Ctrl-C as at a terminal: a shell starts a background job (a test run with `&`) with SIGINT
# ignored, which Python then keeps
signal.signal(signal.SIGINT, signal.default_int_handler)
def write(*args, **kwargs):           # the signal arrives while the output is being written
    # raise_signal: to this thread, handled before it returns
    signal.raise_signal(getattr(signal, os.environ["SIGNAL"]))
    raise AssertionError("SIGTERM did not interrupt")
report.write = write
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("earlier,sig", [(False, "SIGTERM"), (True, "SIGTERM"), (True, "SIGINT"),
                                         (False, "SIGHUP")])
def test_a_signal_while_writing_leaves_no_temporary_and_keeps_the_earlier_output(tmp_path, earlier, sig):
    tiny_model(tmp_path / "m.onnx")
    canary(tmp_path / "notes.txt")
    if earlier:
        r = subprocess.run([sys.executable, "-m", "qloom", "compile", "m.onnx", "-o", "out"], cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        before = (tmp_path / "out" / "top.v").read_text()
    r = subprocess.run([sys.executable, "-c", INTERRUPTED, "compile", "m.onnx", "-o", "out"], cwd=tmp_path,
                       capture_output=True, text=True, env={**os.environ, "SIGNAL": sig})
    assert r.returncode == 130, r.stderr
    assert r.stderr == "qloom: interrupted; nothing was left half-written\n"
    assert leftovers(tmp_path) == []
    assert (tmp_path / "notes.txt").read_bytes() == CANARY
    if earlier:
        assert (tmp_path / "out" / "top.v").read_text() == before
    else:
        assert not (tmp_path / "out").exists()


def test_a_folder_that_cannot_be_written_is_one_sentence(tmp_path, monkeypatch, capsys):
    tiny_model(tmp_path / "m.onnx")
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    code, out, err = badinput.run(["compile", "m.onnx", "-o", "ro/out"], capsys)
    assert code == 2
    assert re.match(r"qloom: error: -o: cannot create a folder in '\S+/ro' \(permission denied\); give a folder "
                    r"you can write in\.\n$", err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "ro"]


def test_a_failed_rename_puts_the_earlier_output_back(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "top.v").write_text("earlier")
    (tmp_path / "out" / outputs.MARKER).write_text('{"written_by": "qloom 0.1.0", "files": ["top.v"]}')
    real = os.replace

    def replace(src, dst):
        if str(src).find(".qloom-tmp-") >= 0:
            raise OSError(28, "No space left on device")
        real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(outputs.OutputError, match=r"cannot put the output in place at 'out' \(no space left"):
        with outputs.folder("out", "-o") as tmp:
            (tmp / "top.v").write_text("new")
    assert (tmp_path / "out" / "top.v").read_text() == "earlier"
    assert leftovers(tmp_path) == []


def test_an_unexpected_exception_is_an_internal_error_with_a_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QLOOM_CACHE", str(tmp_path / "cache"))

    def broken(args):
        return {}["no such key"]
    monkeypatch.setattr(cli, "cmd_inspect", broken)
    parser = cli.parser
    monkeypatch.setattr(cli, "parser", lambda: _with_func(parser(), "inspect", broken))
    code, out, err = badinput.run(["inspect", "m.onnx"], capsys)
    assert code == 3
    m = re.match(r"qloom: internal error in qloom \S+ \(KeyError: 'no such key'\): please report it with the "
                 r"command you ran; the traceback is in (\S+)\.\n$", err)
    assert m, err
    log = open(m.group(1)).read()
    assert "Traceback" in log and "broken" in log and "Traceback" not in out + err
    assert m.group(1).startswith(str(tmp_path / "cache" / "logs"))


def _with_func(p, command, func):
    p._subparsers._group_actions[0].choices[command].set_defaults(func=func)
    return p


def test_main_restores_the_signal_handlers(capsys):
    before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)]
    cli.main(["inspect", "no-such-model.onnx"])
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)] == before


@pytest.mark.parametrize("name,message", [
    ("notes.md", r"bench: error: --output: '\S+notes\.md' exists and is not a qloom benchmark table; qloom replaces "
                 r"only its own kind of output file"),
    ("notes.txt", r"bench: error: --output: '\S+notes\.txt' does not end in \.md"),
])
def test_bench_never_replaces_a_file_it_did_not_write(tmp_path, capsys, name, message):
    from bench import results
    canary(tmp_path / name)
    assert results.main(["--reestimate", "--output", str(tmp_path / name)]) == 2
    assert re.match(message, capsys.readouterr().err)
    assert (tmp_path / name).read_bytes() == CANARY


def test_synth_for_two_targets_writes_again_into_its_earlier_folders(tmp_path, monkeypatch):
    """`synth -o out` with two targets writes out/<target>/: a second run (make demo twice)
    replaces each earlier output; out itself is only their container."""
    import argparse
    from corpus_outputs import qloom_output
    monkeypatch.chdir(tmp_path)
    tiny_model(tmp_path / "m.onnx")
    targets = ["ice40-up5k", "ecp5-85k"]
    for t in targets:
        qloom_output(tmp_path / "out" / t)
    args = argparse.Namespace(model="m.onnx", input=None, labels=None, fold=None, json=None, output="out",
                              target=targets, force=False)
    assert cli._synth_outputs(args) == {t: tmp_path.joinpath("out", t).relative_to(tmp_path) for t in targets}
    canary(tmp_path / "out" / targets[1] / "mine.txt")
    with pytest.raises(outputs.OutputError, match=r"-o: 'out/ecp5-85k' is an earlier qloom output but now also "
                                                  r"holds files qloom did not write \(mine\.txt\)"):
        cli._synth_outputs(args)


@pytest.mark.parametrize("value", ["-5", "nan", "soon"])
def test_bench_refuses_a_route_limit_that_is_not_a_duration(capsys, value):
    from bench import results
    with pytest.raises(SystemExit) as e:
        results.main(["--route-limit", value])
    assert e.value.code == 2
    assert f"argument --route-limit: give a number of seconds, 0 or more (0: no limit), not '{value}'" in \
        capsys.readouterr().err
