"""In a Jupyter kernel without ipywidgets, importing convscope and making its progress bars warns
nothing (tqdm.auto printed "IProgress not found"); with a kernel and ipywidgets the bar is the widget."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FAKE_KERNEL = textwrap.dedent(
    """
    import sys, types, warnings
    class ZMQInteractiveShell:                   # what get_ipython() is in a notebook kernel
        config = {"IPKernelApp": {}}
    sys.modules["IPython"] = types.SimpleNamespace(get_ipython=ZMQInteractiveShell)
    sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
    sys.modules["ipywidgets"] = None              # not installed: its import raises ImportError
    warnings.simplefilter("always")
    seen = []
    warnings.showwarning = lambda message, *rest: seen.append(str(message))
    """
)


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FAKE_KERNEL + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_no_iprogress_warning_in_a_kernel_without_ipywidgets():
    done = run(
        """
        import convscope, convscope.scan.progress, convscope.atlas.build, convscope.demo.train, convscope.analysis.evolve
        from convscope.progress import in_notebook, progress_bar
        from tqdm.std import tqdm
        bar = progress_bar(total=3, disable=True)
        assert type(bar) is tqdm and not in_notebook()
        print("quiet" if not any("IProgress" in w for w in seen) else seen)
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "quiet", done.stderr


def test_the_same_kernel_makes_tqdm_auto_warn():
    """The oracle that the fake kernel is one tqdm recognises: tqdm.auto warns in it."""
    done = run("import tqdm.auto; print(seen)")
    assert done.returncode == 0 and "IProgress not found" in done.stdout, done.stderr
