"""Package surface: exports, the capi alias, set_logger, and the .pyi stubs kept in step."""

import ast
import inspect
import logging
import pathlib
import sys
import threading

import event_engine
import pytest
from event_engine import _native

PKG_DIR = pathlib.Path(event_engine.__file__).parent


def test_module_flags_and_version():
    assert event_engine.USING_FALLBACK is False
    assert isinstance(event_engine.__version__, str) and event_engine.__version__
    assert (PKG_DIR / "py.typed").exists()


def test_reference_names_and_aliases():
    for name in event_engine.__all__:
        assert hasattr(event_engine, name), name
    assert event_engine.PyTopic is event_engine.Topic
    assert event_engine.PyMessagePayload is event_engine.MessagePayload
    assert event_engine.PyTopicPartPattern is event_engine.TopicPartPattern
    assert issubclass(event_engine.Full, Exception)
    assert issubclass(event_engine.Empty, Exception)
    assert event_engine.Full.__module__ == "event_engine"


def test_capi_alias():
    from event_engine.capi import EventEngine, Topic

    assert EventEngine is event_engine.EventEngine and Topic is event_engine.Topic
    from event_engine import capi

    assert set(capi.__all__) == set(event_engine.__all__)
    for name in capi.__all__:
        assert getattr(capi, name) is getattr(event_engine, name)


@pytest.fixture
def restore_logger():
    yield
    event_engine.set_logger(event_engine.LOGGER)


def test_loggers_have_pyeventengine_names(restore_logger, caplog):
    # Code configures PyEventEngine's logging by name: the package logger "EventEngine", engines
    # on its child "EventEngine.Engine", hooks on "EventEngine.Event".
    from event_engine import capi

    assert event_engine.LOGGER is logging.getLogger("EventEngine")
    assert capi.LOGGER is event_engine.LOGGER
    engine = event_engine.EventEngine()
    hook = event_engine.EventHook(event_engine.Topic("Log.Names"))
    assert engine.logger is logging.getLogger("EventEngine.Engine")
    assert hook.logger is logging.getLogger("EventEngine.Event")
    with caplog.at_level(logging.DEBUG, logger="EventEngine"):
        engine.unregister_handler(event_engine.Topic("Log.Nothing"), print)
        hook.remove_handler(print)
    by_name = {(r.name, r.levelname): r.getMessage() for r in caplog.records}
    assert "No EventHook registered" in by_name["EventEngine.Engine", "ERROR"]
    assert "does not exist" in by_name["EventEngine.Event", "WARNING"]
    # set_logger sends both elsewhere; given the package logger, it goes back to the names.
    app = logging.getLogger("test.names.app")
    event_engine.set_logger(app)
    assert engine.logger is app and hook.logger is app
    event_engine.set_logger(event_engine.LOGGER)
    assert engine.logger is logging.getLogger("EventEngine.Engine")
    assert hook.logger is logging.getLogger("EventEngine.Event")


def test_set_logger_reaches_engines_and_hooks_without_their_own(restore_logger, caplog):
    own = logging.getLogger("test.own")
    eng = event_engine.EventEngine()
    eng_own = event_engine.EventEngine(logger=own)
    hook = event_engine.EventHook(event_engine.Topic("Log.Topic"))
    app = logging.getLogger("test.app")
    event_engine.set_logger(app)
    assert eng.logger is app and hook.logger is app
    assert eng_own.logger is own
    assert event_engine.EventEngine().logger is app

    # A handler error on an engine-made hook goes to the package logger now.
    topic = event_engine.Topic("Log.Handler")
    done = threading.Event()

    def broken():
        done.set()
        raise RuntimeError("logged via set_logger")

    eng.register_handler(topic, broken)
    with caplog.at_level(logging.ERROR, logger="test.app"):
        eng.start()
        eng.put(topic)
        assert done.wait(10)
        eng.stop()  # joins the loop: the log call has happened
    assert any(r.name == "test.app" and "logged via set_logger" in r.getMessage() + str(r.exc_info) for r in caplog.records)

    with pytest.raises(TypeError, match="set_logger"):
        event_engine.set_logger(42)


# --- stubs ---------------------------------------------------------------


def _stub_tree(name):
    return ast.parse((PKG_DIR / name).read_text())


def _stub_public_names(tree, *, count_plain_imports):
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level:
            for alias in node.names:
                # `X as X` is the stub idiom for a re-export.
                if alias.asname == alias.name or count_plain_imports:
                    names.add(alias.asname or alias.name)
    names.discard("__all__")
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def _runtime_public_names(module):
    return {n for n in dir(module) if not n.startswith("_")} | {"__version__"}


def test_native_stub_lists_exactly_the_native_exports():
    stub = _stub_public_names(_stub_tree("_native.pyi"), count_plain_imports=False)
    assert stub == _runtime_public_names(_native)


def test_package_stub_lists_exactly_the_package_exports():
    tree = _stub_tree("__init__.pyi")
    stub = _stub_public_names(tree, count_plain_imports=False)
    assert stub == set(event_engine.__all__)
    stub_all = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
    )
    assert sorted(stub_all) == sorted(event_engine.__all__)


def _stub_classes(tree):
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _stub_members(cls_node):
    members = set()
    for node in cls_node.body:
        if isinstance(node, ast.FunctionDef):
            members.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members.add(node.target.id)
    return members


def _runtime_members(cls):
    own = set()
    for klass in cls.__mro__:
        if klass is object or klass.__module__ not in ("event_engine", "event_engine._native"):
            continue
        own.update(k for k in vars(klass) if not k.startswith("_"))
    return own


@pytest.mark.parametrize(
    "name",
    [
        "Topic",
        "TopicPart",
        "TopicPartExact",
        "TopicPartAny",
        "TopicPartRange",
        "TopicPartPattern",
        "TopicMatchResult",
        "MessagePayload",
        "EventHook",
        "EventHookEx",
        "EventEngine",
        "EventEngineEx",
    ],
)
def test_stub_classes_type_every_public_member(name):
    classes = _stub_classes(_stub_tree("_native.pyi"))
    node = classes[name]
    stub = set()
    current = node
    while current is not None:  # include members typed on stub base classes
        stub |= _stub_members(current)
        bases = [b.id for b in current.bases if isinstance(b, ast.Name) and b.id in classes]
        current = classes[bases[0]] if bases else None
    runtime = _runtime_members(getattr(_native, name))
    public_stub = {m for m in stub if not m.startswith("_")}
    assert public_stub == runtime, f"{name}: stub-only {public_stub - runtime}, untyped {runtime - public_stub}"


def _stub_params(fn):
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args if x.arg != "self" and x.arg != "cls"]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return names


def _runtime_params(obj):
    names = []
    for p in inspect.signature(obj).parameters.values():
        if p.name in ("self", "cls"):
            continue
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        names.append(prefix + p.name)
    return names


def _is_property(fn):
    return any(
        (isinstance(d, ast.Name) and d.id == "property") or (isinstance(d, ast.Attribute) and d.attr == "setter")
        for d in fn.decorator_list
    )


def test_stub_function_signatures_match_runtime():
    tree = _stub_tree("_native.pyi")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            assert _stub_params(node) == _runtime_params(getattr(_native, node.name)), node.name


def _signatures_exposed():
    """Whether the extension's classes and methods carry their signatures for inspect: PyO3
    sets them on CPython (class signatures from 3.10 on: 3.9's limited API has no place for
    them); PyPy shows none, so there only the methods' presence is compared."""
    if sys.implementation.name != "cpython":
        return {"methods": False, "classes": False}
    return {"methods": True, "classes": sys.version_info >= (3, 10)}


def test_stub_method_signatures_match_runtime():
    exposed = _signatures_exposed()
    checked = 0
    for cls_name, cls_node in _stub_classes(_stub_tree("_native.pyi")).items():
        if cls_name.startswith("_") or cls_name in ("TopicType", "Full", "Empty"):
            continue
        cls = getattr(_native, cls_name)
        for fn in cls_node.body:
            if not isinstance(fn, ast.FunctionDef) or _is_property(fn):
                continue
            if fn.name == "__init__":
                if not exposed["classes"]:
                    continue
                runtime = _runtime_params(cls)
            elif fn.name.startswith("_"):
                continue
            else:
                method = getattr(cls, fn.name, None)
                assert callable(method), f"{cls_name}.{fn.name} is typed but is not a method"
                if not exposed["methods"]:
                    continue
                runtime = _runtime_params(method)
            assert _stub_params(fn) == runtime, f"{cls_name}.{fn.name}"
            checked += 1
    if exposed["methods"]:
        assert checked > 30
