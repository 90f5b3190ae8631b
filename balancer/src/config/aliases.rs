//! A bound on what YAML aliases add. One alias to an anchored list copies
//! the whole list where it stands, so a file of a megabyte could name a
//! list of 100,000 backends once and reuse it in every pool: a hundred
//! million backends built before validation could count them. The YAML
//! library's own limit counts alias uses, not their size, so this walks the
//! document's events first, sizes every anchored node (aliases inside it
//! included) and refuses the alias that would take the copies past
//! [`MAX_ALIAS_NODES`], at its line and column.

use std::collections::HashMap;

use yaml_rust2::{
    parser::{Event, MarkedEventReceiver, Parser},
    scanner::Marker,
};

/// The most nodes (scalars, lists and maps) aliases may add to a file:
/// far above any real use (a shared list of 50 backends in 100 pools adds
/// about 25,000), far below what would exhaust memory.
pub const MAX_ALIAS_NODES: u64 = 1_000_000;

/// Where an alias took the copies past the bound.
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany {
    /// 1-based line of the alias.
    pub line: usize,
    /// 1-based column of the alias.
    pub column: usize,
    /// Nodes the aliases would have added, with this one.
    pub nodes: u64,
}

#[derive(Default)]
struct Sizer {
    /// Nodes so far, aliases counted at their expanded size.
    nodes: u64,
    /// Nodes aliases added so far.
    copied: u64,
    /// Open lists and maps: their anchor and `nodes` when they opened.
    open: Vec<(usize, u64)>,
    /// The expanded size of each finished anchored node.
    sizes: HashMap<usize, u64>,
    refused: Option<TooMany>,
}

impl MarkedEventReceiver for Sizer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.refused.is_some() {
            return;
        }
        match event {
            Event::Scalar(_, _, anchor, _) => {
                self.nodes += 1;
                if anchor > 0 {
                    self.sizes.insert(anchor, 1);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.nodes += 1;
                self.open.push((anchor, self.nodes - 1));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, at_start)) = self.open.pop()
                    && anchor > 0
                {
                    self.sizes.insert(anchor, self.nodes - at_start);
                }
            }
            Event::Alias(anchor) => {
                // An alias to a node still open (a loop) is the YAML
                // library's to refuse; it counts as one node here.
                let size = self.sizes.get(&anchor).copied().unwrap_or(1);
                self.nodes = self.nodes.saturating_add(size);
                self.copied = self.copied.saturating_add(size);
                if self.copied > MAX_ALIAS_NODES {
                    self.refused = Some(TooMany {
                        line: mark.line(),
                        column: mark.col() + 1,
                        nodes: self.copied,
                    });
                }
            }
            _ => {}
        }
    }
}

/// Sizes what the aliases of `text` add; `Err` at the alias that passes
/// the bound. Text that does not parse passes: the YAML library reports it.
pub fn check(text: &str) -> Result<(), TooMany> {
    let mut sizer = Sizer::default();
    let mut parser = Parser::new_from_str(text);
    let _ = parser.load(&mut sizer, true);
    sizer.refused.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn reuse_of_a_small_list_passes_and_a_multiplied_one_is_refused_at_its_alias() {
        let small = "a: &b [1, 2, 3]\nc: *b\nd: *b\n";
        assert_eq!(check(small), Ok(()));
        // Nested copies multiply: each level holds ten of the one below,
        // so `l4` stands for 111,111 nodes, and making the levels copied
        // 123,440 of them.
        let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..=4 {
            let refs = vec![format!("*l{}", level - 1); 10].join(", ");
            let _ = writeln!(text, "l{level}: &l{level} [{refs}]");
        }
        text.push_str("big: [*l4, *l4, *l4, *l4, *l4, *l4, *l4]\n");
        assert_eq!(
            check(&text),
            Ok(()),
            "901,217 copied nodes are within the bound"
        );
        text.push_str("more: [*l4]\n");
        let refused = check(&text).expect_err("1,012,328 are not");
        assert_eq!((refused.line, refused.column), (7, 8), "{refused:?}");
        assert_eq!(refused.nodes, 1_012_328);
    }

    #[test]
    fn text_that_is_not_yaml_is_left_to_the_yaml_library() {
        assert_eq!(check("a: [1, 2\nb: *nowhere\n"), Ok(()));
    }
}
