//! The stack file as written: where every key and value is, read with a YAML parser that
//! keeps spans (saphyr-parser), before serde turns the text into a [`super::Spec`].
//!
//! serde_yaml_ng locates only its own errors, and not inside flow-style maps; the checks
//! that run on the parsed `Spec` have no positions at all. So the text is first walked
//! as YAML events, recording the line and column of every key and value under the same
//! path spelling serde_path_to_error prints (`services.worker.cpu`, `network.subnet_ids[1]`),
//! and every problem is located by its path. The same walk refuses what serde would let
//! through silently: a key given twice in any map (for a free-form map such as `tags`
//! serde keeps the last), nesting deeper than any stack file needs, and `null` where the
//! schema has no null.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

/// Largest stack file read, in bytes. A stack file is tens of lines; a bound keeps the
/// work of the parser, serde and the checks small whatever the input
/// (`benches/spec_limits.sh` measures the largest file accepted and refused).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Deepest nesting of maps and lists: the schema's deepest field is 4 levels down.
const MAX_DEPTH: usize = 16;

/// Most keys and values in a file. The largest valid stack file has a few thousand (48
/// tags, `extra_env` up to its size bound, allow-lists); the bound stops a file of
/// many small entries before serde and the checks spend time and memory on it.
pub const MAX_NODES: usize = 10_000;

/// What CloudFormation resolves inside any string of a template (`{{resolve:ssm:...}}`,
/// `{{resolve:ssm-secure:...}}`, `{{resolve:secretsmanager:...}}`); see
/// `validate::dynamic_references`.
const DYNAMIC_REFERENCE: &str = "{{resolve:";

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// Where a value is, and its key when it is a map entry.
#[derive(Clone, Copy, Debug)]
struct Place {
    key: Option<Pos>,
    value: Pos,
}

/// A problem found while reading the text: path, position, message.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceProblem {
    /// Field path (`services.worker.cpu`); empty for the whole file.
    pub field: String,
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

/// Every key's and value's position in a stack file, by field path.
#[derive(Debug, Default)]
pub struct Positions {
    places: HashMap<String, Place>,
    /// Paths whose value is a plain `null` (`null`, `Null`, `NULL`, `~` or nothing).
    nulls: Vec<String>,
    /// Whether the document is a map (a stack file must be).
    root_is_map: bool,
    /// Paths whose key or value holds a CloudFormation dynamic reference.
    references: Vec<String>,
}

impl Positions {
    /// Where `field` is: its key for a map entry (the line a reader looks for), its value
    /// otherwise; a path that is not in the file falls back to its nearest ancestor that
    /// is (a default that fails a cross-field rule is reported at the block that left it
    /// out), and to 1:1 for the whole file.
    pub fn locate(&self, field: &str) -> Pos {
        let mut path = field;
        loop {
            if let Some(place) = self.places.get(path) {
                return place.key.unwrap_or(place.value);
            }
            match parent(path) {
                Some(up) => path = up,
                None => return Pos { line: 1, column: 1 },
            }
        }
    }

    /// Where the value of `field` starts, when the file has it.
    pub fn value(&self, field: &str) -> Option<Pos> {
        self.places.get(field).map(|p| p.value)
    }

    /// Paths whose value is a plain null.
    pub fn nulls(&self) -> &[String] {
        &self.nulls
    }

    /// The deepest entry that starts on `pos`'s line at or before its column, or on an
    /// earlier line (the field whose value holds `pos`).
    fn last_entry_before(&self, pos: Pos) -> Option<String> {
        self.places
            .iter()
            .map(|(path, place)| (place.key.unwrap_or(place.value), path))
            .filter(|(at, _)| (at.line, at.column) <= (pos.line, pos.column))
            .max_by_key(|(at, path)| (at.line, at.column, path.len()))
            .map(|(_, path)| path.clone())
    }

    /// Paths whose key or value holds `{{resolve:`.
    pub fn dynamic_references(&self) -> &[String] {
        &self.references
    }

    /// Whether the document is a map of settings.
    pub fn root_is_map(&self) -> bool {
        self.root_is_map
    }
}

/// `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> None.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// One open map or list while walking the events.
enum Frame {
    Map {
        path: String,
        /// The key read and waiting for its value, with where it is.
        key: Option<(String, Pos)>,
        seen: HashMap<String, Pos>,
    },
    List {
        path: String,
        next: usize,
    },
}

/// Reads the text's positions, refusing duplicate keys, keys that are not plain text,
/// excessive nesting, a second document, and text the YAML scanner cannot read.
pub fn read(text: &str) -> Result<Positions, SourceProblem> {
    if let Some(bad) = unprintable(text) {
        return Err(bad);
    }
    walk(text)
}

fn walk(text: &str) -> Result<Positions, SourceProblem> {
    let mut walk = Walk::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| walk.scan_error(&e))?;
        walk.event(event, &span)?;
    }
    Ok(walk.positions)
}

#[derive(Default)]
struct Walk {
    positions: Positions,
    frames: Vec<Frame>,
    documents: usize,
    nodes: usize,
}

impl Walk {
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), SourceProblem> {
        let pos = Pos::of(span);
        if matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        ) {
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                return Err(problem(
                    &self.path(),
                    pos,
                    format!("more than {MAX_NODES} keys and values; a stack file needs far fewer"),
                ));
            }
        }
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(problem(
                        "",
                        pos,
                        "a stack file is one YAML document; remove the second `---` and what follows",
                    ));
                }
            }
            Event::Scalar(value, style, _, _) => {
                if self.takes_key() {
                    let reference = value.contains(DYNAMIC_REFERENCE);
                    self.key(value.into_owned(), pos)?;
                    if reference {
                        let path = self.path();
                        self.positions.references.push(path);
                    }
                } else {
                    let path = self.value_path(pos);
                    if value.contains(DYNAMIC_REFERENCE) {
                        self.positions.references.push(path.clone());
                    }
                    if style == ScalarStyle::Plain && is_null(&value) {
                        self.positions.nulls.push(path);
                    }
                }
            }
            Event::Alias(_) => {
                if self.takes_key() {
                    return Err(problem(
                        &self.path(),
                        pos,
                        "a key must be plain text, not an alias",
                    ));
                }
                self.value_path(pos);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.takes_key() {
                    return Err(problem(
                        &self.path(),
                        pos,
                        "a key must be plain text, not a map or a list",
                    ));
                }
                if self.frames.len() >= MAX_DEPTH {
                    return Err(problem(
                        &self.path(),
                        pos,
                        format!("nested deeper than {MAX_DEPTH} levels; no stack-file field is"),
                    ));
                }
                if self.frames.is_empty() {
                    self.positions.root_is_map = matches!(event, Event::MappingStart(..));
                }
                let path = self.value_path(pos);
                self.frames.push(match event {
                    Event::MappingStart(..) => Frame::Map {
                        path,
                        key: None,
                        seen: HashMap::new(),
                    },
                    _ => Frame::List { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the next node is a map key.
    fn takes_key(&self) -> bool {
        matches!(self.frames.last(), Some(Frame::Map { key: None, .. }))
    }

    fn key(&mut self, name: String, pos: Pos) -> Result<(), SourceProblem> {
        let Some(Frame::Map { path, key, seen }) = self.frames.last_mut() else {
            unreachable!("takes_key checked the frame");
        };
        if let Some(first) = seen.get(&name) {
            let field = join(path, &name);
            return Err(problem(
                &field,
                pos,
                format!(
                    "`{name}` is given twice in this map (first at line {}, column {}); YAML keeps one of them silently, so give it once",
                    first.line, first.column
                ),
            ));
        }
        seen.insert(name.clone(), pos);
        *key = Some((name, pos));
        Ok(())
    }

    /// Records the position of the value now starting and returns its path.
    fn value_path(&mut self, pos: Pos) -> String {
        let (path, key) = match self.frames.last_mut() {
            None => (String::new(), None),
            Some(Frame::Map { path, key, .. }) => {
                let (name, at) = key.take().expect("a value follows its key");
                (join(path, &name), Some(at))
            }
            Some(Frame::List { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                (item, None)
            }
        };
        self.positions
            .places
            .entry(path.clone())
            .or_insert(Place { key, value: pos });
        path
    }

    /// The path being read: the open key's, or the innermost open block's.
    fn path(&self) -> String {
        match self.frames.last() {
            None => String::new(),
            Some(Frame::Map {
                path,
                key: Some((name, _)),
                ..
            }) => join(path, name),
            Some(Frame::Map { path, .. }) | Some(Frame::List { path, .. }) => path.clone(),
        }
    }

    /// The scanner's error, at the key whose value it could not read when there is one
    /// (an unclosed quote is found at the end of the file, far from where it opened).
    fn scan_error(&self, e: &ScanError) -> SourceProblem {
        let at = e.marker();
        let stopped = Pos {
            line: at.line(),
            column: at.col() + 1,
        };
        let open_key = match self.frames.last() {
            Some(Frame::Map {
                key: Some((_, pos)),
                ..
            }) => Some(*pos),
            _ => None,
        };
        match open_key {
            Some(pos) if pos != stopped => problem(
                &self.path(),
                pos,
                format!(
                    "not valid YAML: {} (the YAML scanner stopped at line {}, column {})",
                    e.info(),
                    stopped.line,
                    stopped.column
                ),
            ),
            _ => problem(
                &self.path(),
                stopped,
                format!("not valid YAML: {}", e.info()),
            ),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The first character YAML does not allow in a stream (YAML 1.2, 5.1 "Character Set":
/// tab, line feed, carriage return, and printable characters only), located by line and
/// column and named by the field whose entry holds it. Checked before scanning because
/// the scanner takes a NUL for the end of the text and reports it elsewhere.
fn unprintable(text: &str) -> Option<SourceProblem> {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r') || !c.is_control() || c == '\u{85}';
    let (offset, bad) = text.char_indices().find(|(_, c)| !allowed(*c))?;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let pos = Pos {
        line: text[..offset].matches('\n').count() + 1,
        column: text[line_start..offset].chars().count() + 1,
    };
    let cleaned: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { ' ' })
        .collect();
    let field = walk(&cleaned)
        .ok()
        .and_then(|p| p.last_entry_before(pos))
        .unwrap_or_default();
    Some(problem(
        &field,
        pos,
        format!(
            "the character U+{:04X} is not allowed in YAML (only tab, line breaks and printable characters are)",
            bad as u32
        ),
    ))
}

/// YAML 1.2's null forms of a plain scalar.
fn is_null(value: &str) -> bool {
    matches!(value, "" | "~" | "null" | "Null" | "NULL")
}

fn problem(field: &str, pos: Pos, message: impl Into<String>) -> SourceProblem {
    SourceProblem {
        field: field.to_string(),
        pos,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn block_and_flow_values_are_located_by_path() {
        let text = "name: x\nservices:\n  # c\n  worker: { cpu: 512, memory: 1024 }\n  scheduler:\n    cpu: 1\nnetwork:\n  subnet_ids: [subnet-1, subnet-2]\n";
        let p = read(text).unwrap();
        assert_eq!(p.locate("name"), at(1, 1));
        assert_eq!(p.locate("services.worker.cpu"), at(4, 13));
        assert_eq!(p.value("services.worker.memory"), Some(at(4, 31)));
        assert_eq!(p.locate("services.scheduler.cpu"), at(6, 5));
        assert_eq!(p.locate("network.subnet_ids[1]"), at(8, 26));
        // Not in the file: its nearest written ancestor.
        assert_eq!(p.locate("services.flower.cpu"), at(2, 1));
        assert_eq!(p.locate("bogus"), at(1, 1));
    }

    #[test]
    fn a_key_given_twice_is_refused_where_it_repeats() {
        let e = read("name: x\ntags:\n  team: a\n  owner: b\n  team: c\n").unwrap_err();
        assert_eq!(e.field, "tags.team");
        assert_eq!(e.pos, at(5, 3));
        assert!(
            e.message.contains("first at line 3, column 3"),
            "{}",
            e.message
        );
        let e = read("w: { cpu: 1, cpu: 2 }\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.pos), ("w.cpu", at(1, 14)));
    }

    #[test]
    fn plain_nulls_are_listed_and_quoted_ones_are_not() {
        let p = read("name: null\nregion: \"null\"\nimage:\nx: ~\n").unwrap();
        assert_eq!(p.nulls(), ["name", "image", "x"]);
    }

    #[test]
    fn scanner_errors_carry_the_open_field() {
        let e = read("name: x\nairflow:\n  image: \"unclosed\n").unwrap_err();
        assert_eq!(e.field, "airflow.image");
        assert_eq!(e.pos, at(3, 3));
        assert!(e.message.starts_with("not valid YAML"), "{}", e.message);
    }

    #[test]
    fn a_nul_byte_is_located_where_it_is() {
        let e = read("name: x\ntags:\n  a: b\n  c: \"x\0y\"\nregion: r\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.pos), ("tags.c", at(4, 8)));
        assert!(e.message.contains("U+0000"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_and_second_documents_are_refused() {
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert!(read(&deep).unwrap_err().message.contains("nested deeper"));
        let e = read("name: a\n---\nname: b\n").unwrap_err();
        assert_eq!(e.pos.line, 2);
    }
}
