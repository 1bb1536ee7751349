//! `cargo run -p cfn-codegen`: regenerates `src/cfn/l1` from `codegen/schemas`.
//! `cargo run -p cfn-codegen -- --check` only reports whether it is up to date (exit 1
//! when not).

use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("usage: cfn-codegen [--check]  (unknown argument {other})");
            return ExitCode::from(2);
        }
    };
    let generated = match cfn_codegen::generate(&cfn_codegen::codegen_dir()) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("cfn-codegen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = cfn_codegen::output_dir();
    if check {
        let problems = cfn_codegen::out_of_date(&generated, &dir);
        if problems.is_empty() {
            println!("{} is up to date", dir.display());
            return ExitCode::SUCCESS;
        }
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("run `cargo run -p cfn-codegen` to regenerate");
        return ExitCode::FAILURE;
    }
    if let Err(e) = write(&generated, &dir) {
        eprintln!("cfn-codegen: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {} files to {}", generated.len(), dir.display());
    ExitCode::SUCCESS
}

/// Writes the files that changed and deletes generated files no longer produced (only
/// files that carry the generated mark, never a hand-written one).
fn write(
    generated: &std::collections::BTreeMap<String, String>,
    dir: &std::path::Path,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, code) in generated {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(code.as_str()) {
            std::fs::write(&path, code).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    for name in cfn_codegen::stale_files(generated, dir) {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(cfn_codegen::GENERATED_MARK) {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("removed {name}");
        } else {
            eprintln!("left {name} alone: not generated and not listed as hand-written");
        }
    }
    Ok(())
}
