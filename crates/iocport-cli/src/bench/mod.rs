//! `iocport bench`: suites of cases, each run for iocport and its peers side by side.

use std::path::Path;

/// Runs the named suites (all when empty).
pub fn run(suites: &[String], quick: bool, json: Option<&Path>) -> Result<(), String> {
    let _ = (suites, quick, json);
    Err("no benchmark suite is built yet".into())
}
