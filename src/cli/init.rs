//! `airflow-stack init`: a new, commented stack file and a starter `dags/` folder, from
//! the minijinja templates in the repository's `templates/` folder (compiled into the
//! binary, so an installed CLI has them).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use minijinja::{context, AutoEscape, Environment};

use super::Failure;
use crate::spec;

/// The stack-file template.
const STACK_TEMPLATE: &str = include_str!("../../templates/stack.yaml.j2");
/// The example DAG's template.
const DAG_TEMPLATE: &str = include_str!("../../templates/dags/hello_airflow_stack.py.j2");
/// Where the example DAG goes, under the output folder.
const DAG_FILE: &str = "dags/hello_airflow_stack.py";

/// A starting point for the stack file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// The cheapest always-on stack: public subnets without NAT, one small RDS
    /// instance, Redis on Fargate, the core components packed in one Spot task.
    Dev,
    /// Private subnets behind NAT, Aurora Serverless v2, ElastiCache, two schedulers
    /// and api-servers, deletion and termination protection.
    Prod,
}

impl Shape {
    fn as_str(self) -> &'static str {
        match self {
            Shape::Dev => "dev",
            Shape::Prod => "prod",
        }
    }
}

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write `<name>.yaml` and `dags/` into.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Starting point: `dev` or `prod`.
    #[arg(long, value_enum)]
    shape: Option<Shape>,
    /// Stack name (1-32 letters, digits and hyphens, starting with a letter).
    #[arg(long)]
    name: Option<String>,
    /// AWS region, e.g. `eu-west-1`.
    #[arg(long)]
    region: Option<String>,
    /// Use this existing VPC instead of creating one (needs --subnet-ids).
    #[arg(long, requires = "subnet_ids")]
    vpc_id: Option<String>,
    /// Subnets of --vpc-id for tasks and the database, comma-separated (at least 2, in
    /// different AZs).
    #[arg(long, value_delimiter = ',', requires = "vpc_id")]
    subnet_ids: Vec<String>,
}

/// What the templates are rendered with.
struct Answers {
    shape: Shape,
    name: String,
    region: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let answers = answers(&args)?;
    let stack_name = format!("{}.yaml", answers.name);
    // Paths as the user would type them: `x.yaml`, not `./x.yaml`.
    let under = |p: &str| {
        if args.dir == Path::new(".") {
            PathBuf::from(p)
        } else {
            args.dir.join(p)
        }
    };
    let stack_path = under(&stack_name);
    let dag_path = under(DAG_FILE);
    let (stack, dag) = render(&answers, &args, &stack_name)?;
    // The rendered file passes the same checks as any stack file; a problem in a flag's
    // value is reported against the flag.
    let parsed =
        spec::parse(&stack, &stack_path).map_err(|e| Failure::BadInput(flag_problems(&e)))?;
    // And it synthesizes (a template-level rule would show here).
    crate::stack::build(&parsed).map_err(|e| {
        Failure::Failed(anyhow!("the generated stack file does not synthesize: {e}"))
    })?;
    // Nothing is written when any file exists: init never overwrites.
    for path in [&stack_path, &dag_path] {
        if path.exists() {
            return Err(Failure::Failed(anyhow!(
                "{} already exists; init does not overwrite files (move it away, or choose another --name or folder)",
                path.display()
            )));
        }
    }
    write_new(&[(&stack_path, stack.as_bytes()), (&dag_path, dag.as_bytes())])?;
    let file = stack_path.display();
    println!(
        "Wrote {file} ({} shape) and {}.\nNext:\n  airflow-stack validate {file}\n  airflow-stack cost {file}\n  airflow-stack bootstrap {file}   # once per account and region\n  airflow-stack deploy {file}\n  airflow-stack dags push {} {file}",
        answers.shape.as_str(),
        dag_path.display(),
        under("dags").display(),
    );
    Ok(())
}

/// The flags' values, asking on the terminal for missing ones; without a terminal a
/// missing flag is an error that lists them all.
fn answers(args: &Args) -> Result<Answers, Failure> {
    let mut missing = Vec::new();
    if args.shape.is_none() {
        missing.push("--shape dev|prod");
    }
    if args.name.is_none() {
        missing.push("--name NAME");
    }
    if args.region.is_none() {
        missing.push("--region REGION");
    }
    if missing.is_empty() {
        return Ok(Answers {
            shape: args.shape.expect("checked"),
            name: args.name.clone().expect("checked"),
            region: args.region.clone().expect("checked"),
        });
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::BadInput(format!(
            "init needs {} (stdin is not a terminal, so it does not ask)",
            missing.join(", ")
        )));
    }
    let shape = match args.shape {
        Some(s) => s,
        None => loop {
            match ask("Shape, dev or prod", "dev")?.as_str() {
                "dev" => break Shape::Dev,
                "prod" => break Shape::Prod,
                other => eprintln!("{other:?} is neither dev nor prod"),
            }
        },
    };
    let name = match &args.name {
        Some(n) => n.clone(),
        None => ask("Stack name", &format!("airflow-{}", shape.as_str()))?,
    };
    let region = match &args.region {
        Some(r) => r.clone(),
        None => ask("AWS region", "us-east-1")?,
    };
    Ok(Answers {
        shape,
        name,
        region,
    })
}

/// One question on stderr, the answer from stdin; empty takes the default.
fn ask(question: &str, default: &str) -> Result<String, Failure> {
    eprint!("{question} [{default}]: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    if read == 0 {
        return Err(Failure::BadInput("no answer (end of input)".into()));
    }
    let answer = line.trim();
    Ok(if answer.is_empty() { default } else { answer }.to_string())
}

/// The stack file and the example DAG.
fn render(answers: &Answers, args: &Args, stack_name: &str) -> Result<(String, String), Failure> {
    let mut env = Environment::new();
    // YAML and Python, not HTML: nothing to escape; user values go through `quote`.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    // A JSON string is a YAML double-quoted scalar: whatever a flag holds, it stays one
    // value (validation then says whether it is a good one).
    env.add_filter("quote", |value: String| {
        serde_json::to_string(&value).expect("a string serialises")
    });
    // Inside a comment or a docstring: the same escaping without the quotes, so a line
    // break in a value cannot end the comment.
    env.add_filter("inline", |value: String| {
        let quoted = serde_json::to_string(&value).expect("a string serialises");
        quoted[1..quoted.len() - 1].to_string()
    });
    let defaults = minimal_spec();
    let ctx = context! {
        shape => answers.shape.as_str(),
        name => &answers.name,
        region => &answers.region,
        vpc_id => &args.vpc_id,
        subnet_ids => &args.subnet_ids,
        file => stack_name,
        airflow_version => &defaults.airflow.version,
        database_version => defaults.database.engine_version.as_str(),
    };
    let render = |name: &str, source: &str| {
        env.render_named_str(name, source, &ctx)
            .map_err(|e| Failure::Failed(anyhow!("template {name}: {e:#}")))
    };
    Ok((
        render("stack.yaml.j2", STACK_TEMPLATE)?,
        render("hello_airflow_stack.py.j2", DAG_TEMPLATE)?,
    ))
}

/// A spec with every default (for the versions the templates name).
fn minimal_spec() -> spec::Spec {
    spec::parse("name: x\nregion: us-east-1\n", Path::new("defaults.yaml"))
        .expect("the minimal stack file is valid")
}

/// The problems of the rendered file, named by the flag that set the field.
fn flag_problems(e: &spec::SpecError) -> String {
    let lines: Vec<String> = e
        .problems
        .iter()
        .map(|p| {
            let flag = match p.field.split(['.', '[']).collect::<Vec<_>>().as_slice() {
                ["name", ..] => "--name",
                ["region", ..] => "--region",
                ["network", "vpc_id", ..] => "--vpc-id",
                ["network", "subnet_ids", ..] => "--subnet-ids",
                _ => "the generated file",
            };
            format!("{flag}: {}", p.message)
        })
        .collect();
    lines.join("\n")
}

/// Writes each file through a temporary file in its folder and a rename that fails if
/// the file appeared meanwhile: each file is whole or absent, and if one cannot be
/// written the ones already in place are removed again.
fn write_new(files: &[(&Path, &[u8])]) -> Result<(), Failure> {
    let mut staged = Vec::new();
    for (path, contents) in files {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        tmp.write_all(contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        staged.push((tmp, *path));
    }
    let mut written: Vec<&Path> = Vec::new();
    for (tmp, path) in staged {
        if let Err(e) = tmp.persist_noclobber(path) {
            for done in written {
                let _ = std::fs::remove_file(done);
            }
            return Err(Failure::Failed(anyhow!(
                "cannot write {}: {}",
                path.display(),
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    "it appeared meanwhile; init does not overwrite files".to_string()
                } else {
                    e.error.to_string()
                }
            )));
        }
        written.push(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(shape: Shape, vpc: bool) -> Args {
        Args {
            dir: PathBuf::from("."),
            shape: Some(shape),
            name: Some(format!("airflow-{}", shape.as_str())),
            region: Some("eu-west-1".into()),
            vpc_id: vpc.then(|| "vpc-0a1b2c3d4e5f60718".to_string()),
            subnet_ids: if vpc {
                vec!["subnet-0a1b2c3d".into(), "subnet-1a2b3c4d".into()]
            } else {
                Vec::new()
            },
        }
    }

    fn rendered(shape: Shape, vpc: bool) -> spec::Spec {
        let a = args(shape, vpc);
        let answers = answers(&a).unwrap();
        let (stack, dag) = render(&answers, &a, "x.yaml").unwrap();
        assert!(dag.contains("def hello_airflow_stack()"), "{dag}");
        spec::parse(&stack, Path::new("x.yaml")).unwrap_or_else(|e| panic!("{e}\n{stack}"))
    }

    #[test]
    fn each_shape_renders_a_valid_stack_file_of_that_shape() {
        let dev = rendered(Shape::Dev, false);
        assert_eq!(dev.database.engine, spec::DatabaseEngine::RdsPostgres);
        assert_eq!(dev.network.nat_gateways, 0);
        let prod = rendered(Shape::Prod, false);
        assert!(prod.termination_protection && prod.database.deletion_protection);
        assert_eq!(prod.network.nat_gateways, 2);
        let existing = rendered(Shape::Prod, true);
        assert_eq!(
            existing.network.vpc_id.as_deref(),
            Some("vpc-0a1b2c3d4e5f60718")
        );
        assert_eq!(existing.network.subnet_ids.len(), 2);
    }

    #[test]
    fn a_value_cannot_inject_yaml() {
        let mut a = args(Shape::Dev, false);
        a.name = Some("x\nregion: us-west-2".into());
        let (stack, _) = render(&answers(&a).unwrap(), &a, "x.yaml").unwrap();
        let err = spec::parse(&stack, Path::new("x.yaml")).unwrap_err();
        assert_eq!(
            flag_problems(&err)
                .lines()
                .next()
                .map(|l| l.starts_with("--name: ")),
            Some(true),
            "{err}"
        );
    }
}
