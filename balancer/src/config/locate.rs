//! Maps field paths (`pools[0].backends[2].address`) to where they are written
//! in the YAML text. serde reports positions only for errors it finds itself;
//! errors found by validation need this index to point at the right line.

use std::collections::HashMap;

use yaml_rust2::{
    parser::{Event, MarkedEventReceiver, Parser},
    scanner::Marker,
};

/// Positions of every node in a YAML document, by field path.
#[derive(Debug, Default)]
pub struct Locator {
    nodes: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    nodes: HashMap<String, (usize, usize)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// Path of the value node that starts now, and moves the parent on.
    fn value_path(&mut self) -> String {
        match self.stack.last_mut() {
            Some(Frame::Map { path, key }) => join(path, &key.take().unwrap_or_default()),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                p
            }
            None => String::new(),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn record(&mut self, path: &str, mark: Marker) {
        // yaml-rust2 columns are 0-based; editors and serde count from 1.
        self.nodes
            .entry(path.to_owned())
            .or_insert((mark.line(), mark.col() + 1));
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) if self.expecting_key() => {
                if let Some(Frame::Map { path, .. }) = self.stack.last() {
                    let key_path = join(path, &value);
                    self.record(&key_path, mark);
                }
                if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                    *key = Some(value);
                }
            }
            Event::Scalar(..) | Event::Alias(_) => {
                let path = self.value_path();
                // A value's own position beats its key's: overwrite.
                self.nodes.insert(path, (mark.line(), mark.col() + 1));
            }
            Event::MappingStart(..) => {
                let path = self.value_path();
                self.record(&path, mark);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path();
                self.record(&path, mark);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Indexes `text`. Text that does not parse yields an empty index; serde
    /// reports the syntax error with its own position.
    #[must_use]
    pub fn new(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Self::default();
        }
        Self {
            nodes: builder.nodes,
        }
    }

    /// Line and column of `path`, or of its nearest ancestor that is written
    /// down (a missing field points at the mapping that lacks it).
    #[must_use]
    pub fn position(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(pos) = self.nodes.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.nodes.get("").copied().unwrap_or((1, 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Locator;

    const DOC: &str = "version: 1\npools:\n  - name: web\n    backends:\n      - address: a\n      - address: b\n        weight: 5\n";

    #[test]
    fn finds_values_in_nested_sequences() {
        let loc = Locator::new(DOC);
        assert_eq!(loc.position("version"), (1, 10));
        assert_eq!(loc.position("pools[0].name"), (3, 11));
        assert_eq!(loc.position("pools[0].backends[1].address"), (6, 18));
        assert_eq!(loc.position("pools[0].backends[1].weight"), (7, 17));
    }

    #[test]
    fn missing_field_points_at_its_parent() {
        let loc = Locator::new(DOC);
        assert_eq!(
            loc.position("pools[0].health.interval"),
            loc.position("pools[0]")
        );
    }
}
