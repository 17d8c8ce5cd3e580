# paydr's start-up hook for moto_server (written by paydr, loaded through
# PYTHONPATH; see internal/local/moto). It changes how fast moto works,
# never what it answers.
#
# moto 5.2 delivers an EventBridge event to each target of a matching rule
# through EventTemplateParser.parse, which compiles eight JSONPath
# expressions with a fresh PLY parser every time (about 35 ms each, some
# 285 ms of CPU per event). At a drill's 5 payments a second that is most of
# a core of this machine, in a server that answers every other AWS call.
# jsonpath_ng's parse is a pure function of its string: memoizing it keeps
# each result identical and makes delivery take about a millisecond.
import sys


def _paydr_memoize_jsonpath():
    try:
        import functools

        import jsonpath_ng.ext as ext
    except Exception as err:  # moto without jsonpath_ng: nothing to speed up
        print("paydr-moto-hook: jsonpath_ng not memoized: %s" % err, file=sys.stderr, flush=True)
        return
    if getattr(ext.parse, "_paydr_memoized", False):
        return
    memo = functools.lru_cache(maxsize=512)(ext.parse)
    memo._paydr_memoized = True
    ext.parse = memo
    print("paydr-moto-hook: jsonpath_ng.ext.parse memoized (EventBridge delivery)", file=sys.stderr, flush=True)


def _paydr_chain():
    # Run the sitecustomize this one shadows, if the interpreter has one.
    import importlib.util
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        path = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("_paydr_shadowed_sitecustomize", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return


_paydr_memoize_jsonpath()
try:
    _paydr_chain()
except Exception as err:
    print("paydr-moto-hook: the shadowed sitecustomize failed: %s" % err, file=sys.stderr, flush=True)
