//! The key path and position of every node of a YAML text, from the parser's events (block and flow style
//! alike), for error messages that must name the innermost key: serde buffers an internally tagged enum before
//! it reads its fields, so serde-saphyr locates an error inside one (an unknown field) at the enum's own key;
//! the index finds the field below it.

use serde_saphyr::granit_parser::{Event, Parser};

/// One node: its key path (`methods.dann.lambda_schedule`, `tasks[1]`), where it starts (1-based line and
/// column, as serde-saphyr reports them) and whether it is a mapping key (else a value or a list item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub is_key: bool,
    pub kind: Kind,
}

/// What a node is: a scalar (its text), the start of a mapping or a sequence, or an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Scalar(String),
    Map,
    Seq,
    Alias,
}

enum Frame {
    /// A mapping: its path, and the key whose value comes next (None: a key comes next).
    Map { path: String, key: Option<String> },
    /// A sequence: its path and the index of the next item.
    Seq { path: String, next: usize },
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// Every node of the first document of `text` in document order; the nodes read before a syntax error when
/// the text does not parse (that error is reported by the deserializer).
pub(crate) fn index(text: &str) -> Vec<Node> {
    let mut out = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let (line, col) = (span.start.line(), span.start.col() + 1);
        let (is_start, scalar, kind) = match &event {
            Event::Scalar(v, ..) => (false, Some(v.to_string()), Kind::Scalar(v.to_string())),
            Event::Alias(_) => (false, None, Kind::Alias),
            Event::MappingStart(..) => (true, None, Kind::Map),
            Event::SequenceStart(..) => (true, None, Kind::Seq),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                complete(&mut stack, None);
                continue;
            }
            Event::DocumentEnd => break,
            _ => continue,
        };
        // The node's own path, from its parent.
        let (path, is_key) = match stack.last() {
            None => (String::new(), false),
            Some(Frame::Map { path, key: None }) => (join(path, scalar.as_deref().unwrap_or("?")), true),
            Some(Frame::Map { path, key: Some(k) }) => (join(path, k), false),
            Some(Frame::Seq { path, next }) => (format!("{path}[{next}]"), false),
        };
        out.push(Node { path: path.clone(), line, col, is_key, kind });
        if is_start {
            stack.push(match event {
                Event::MappingStart(..) => Frame::Map { path, key: None },
                _ => Frame::Seq { path, next: 0 },
            });
        } else {
            complete(&mut stack, if is_key { scalar.or(Some("?".into())) } else { None });
        }
    }
    out
}

/// A node of the parent `stack.last()` is complete: a key (`Some(name)`) makes its value come next; a value
/// or an item moves the parent on.
fn complete(stack: &mut [Frame], key: Option<String>) {
    match stack.last_mut() {
        Some(Frame::Map { key: k, .. }) => {
            *k = match k {
                None => Some(key.unwrap_or_else(|| "?".into())),
                Some(_) => None,
            }
        }
        Some(Frame::Seq { next, .. }) => *next += 1,
        None => {}
    }
}

/// For an error at (`line`, `col`) about the field `field` (e.g. an unknown one): when the position is that
/// of a key, or of a mapping, that holds `field` (the key of a buffered tagged enum, or of a section above it), the
/// field's own node — a direct child first, else the first one deeper down; None when the position is the
/// field itself or nothing matches.
pub(crate) fn field_below(text: &str, line: usize, col: usize, field: &str) -> Option<Node> {
    let nodes = index(text);
    let at = nodes.iter().position(|n| n.line == line && n.col == col)?;
    let base = &nodes[at].path;
    let inside =
        |p: &str| p.strip_prefix(base.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
    let below: Vec<&Node> = nodes[at + 1..]
        .iter()
        .take_while(|n| inside(&n.path))
        .filter(|n| n.is_key && n.path.len() > base.len())
        .collect();
    let child = join(base, field);
    let deeper = format!(".{field}");
    below
        .iter()
        .find(|n| n.path == child)
        .or_else(|| below.iter().find(|n| n.path.ends_with(&deeper)))
        .map(|n| (*n).clone())
}

/// The innermost node starting exactly at (`line`, `col`): a key or a value.
pub(crate) fn node_at(text: &str, line: usize, col: usize) -> Option<Node> {
    index(text).into_iter().rfind(|n| n.line == line && n.col == col)
}

/// The key node starting at (`line`, `col`) and its value node.
pub(crate) fn key_and_value(nodes: &[Node], line: usize, col: usize) -> Option<(&Node, &Node)> {
    let i = nodes.iter().position(|n| n.line == line && n.col == col && n.is_key)?;
    let v = nodes.get(i + 1).filter(|v| !v.is_key && v.path == nodes[i].path)?;
    Some((&nodes[i], v))
}

/// The value nodes strictly inside the node at `path` (a mapping or sequence), in document order.
pub(crate) fn values_inside<'a>(nodes: &'a [Node], path: &str) -> impl Iterator<Item = &'a Node> {
    nodes.iter().filter(move |n| {
        !n.is_key && n.path.strip_prefix(path).is_some_and(|rest| rest.starts_with(['.', '[']) || path.is_empty())
    })
}

/// The path of the mapping or sequence holding the node at `path` ("" for the top level).
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: &str = "name: x\nmethods:\n  dann: {trade_off: 1, lambda_schedule: {kind: constant, gama: 10}}\n\
                     tasks:\n  - a→b\n  - [c, d]\noptim:\n  lr: 0.1\n  groups:\n    critic:\n      lr: 2\n";

    fn paths(text: &str) -> Vec<(String, usize, usize, bool)> {
        index(text).into_iter().map(|n| (n.path, n.line, n.col, n.is_key)).collect()
    }

    #[test]
    fn kinds_values_and_parents() {
        let nodes = index(Y);
        let (k, v) = key_and_value(&nodes, 3, 24).unwrap();
        assert_eq!((k.path.as_str(), &v.kind), ("methods.dann.lambda_schedule", &Kind::Map));
        let inside: Vec<_> = values_inside(&nodes, "methods.dann.lambda_schedule").map(|n| n.kind.clone()).collect();
        assert_eq!(inside, vec![Kind::Scalar("constant".into()), Kind::Scalar("10".into())]);
        let (_, v) = key_and_value(&nodes, 8, 3).unwrap();
        assert_eq!(v.kind, Kind::Scalar("0.1".into()));
        assert_eq!(key_and_value(&nodes, 8, 7), None, "a value, not a key");
        assert_eq!(values_inside(&nodes, "tasks").filter(|n| n.kind == Kind::Seq).count(), 1);
        assert_eq!(parent("methods.dann.lambda_schedule"), "methods.dann");
        assert_eq!(parent("tasks[1][0]"), "tasks[1]");
        assert_eq!(parent("name"), "");
    }

    #[test]
    fn paths_and_positions_of_block_and_flow_nodes() {
        let p = paths(Y);
        let has = |path: &str, line: usize, col: usize, key: bool| {
            assert!(p.contains(&(path.to_string(), line, col, key)), "{path} {line}:{col} {key} not in {p:?}")
        };
        has("name", 1, 1, true);
        has("methods.dann", 3, 3, true);
        has("methods.dann.lambda_schedule", 3, 24, true);
        has("methods.dann.lambda_schedule.gama", 3, 58, true);
        has("tasks[0]", 5, 5, false);
        has("tasks[1][1]", 6, 9, false);
        has("optim.lr", 8, 3, true);
        has("optim.groups.critic.lr", 11, 7, true);
        has("optim.groups.critic.lr", 11, 11, false);
    }

    #[test]
    fn the_field_below_a_key() {
        let n = field_below(Y, 3, 24, "gama").unwrap();
        assert_eq!((n.path.as_str(), n.line, n.col), ("methods.dann.lambda_schedule.gama", 3, 58));
        assert_eq!(field_below(Y, 3, 24, "gamma"), None);
        let n = field_below(Y, 3, 3, "gama").unwrap();
        assert_eq!(n.path, "methods.dann.lambda_schedule.gama", "found deeper down");
        assert_eq!(field_below(Y, 1, 1, "gama"), None, "not below `name`");
        let n = field_below("m:\n  a: {k: 3}\n", 2, 6, "k").unwrap();
        assert_eq!((n.path.as_str(), n.col), ("m.a.k", 7), "located at the flow mapping itself");
        assert_eq!(field_below(Y, 3, 58, "gama"), None, "the position is the field itself");
        assert_eq!(node_at(Y, 8, 7).unwrap().path, "optim.lr");
    }
}
