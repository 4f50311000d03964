// The `Py_LIMITED_API`, `Py_3_10` and `PyPy` cfgs of the interpreter PyO3 builds for, so that
// the few places that go below PyO3 (`pystr.rs`, `vectorcall.rs`) can tell which API they have.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
