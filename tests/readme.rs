//! The README is part of the product: its tour of the stack file is a stack file the
//! CLI accepts, so the reference cannot drift from what `validate` takes.

mod common;

use common::{cli, root};

/// The YAML block under "A tour of the stack file".
fn tour() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("## A tour of the stack file")
        .expect("the README has the tour")
        .1;
    let block = section.split_once("```yaml\n").expect("a yaml block").1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_string()
}

#[test]
fn the_readmes_tour_of_the_stack_file_validates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tour.yaml");
    std::fs::write(&file, tour()).unwrap();
    let out = cli().arg("validate").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
