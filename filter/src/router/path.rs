//! Path index for one hostname group: an exact-path map, a segment trie of prefixes (and of the
//! regex paths whose leading literal text names a directory), and the other regex paths. Each
//! holds candidate lists sorted by precedence; a lookup merges the lists that apply to the
//! request path, so candidates are tried lowest rank first and the first one whose remaining
//! conditions hold is the answer.
//!
//! Why not `matchit`: it returns one route per path, while Gateway API needs *every* prefix along
//! the path (a header match on `/api/v1` can fail and `/api` must still be tried).

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::host::HostIndex;
use crate::table::{Attachment, PathMatch, ValidTable};

/// Candidates are stored as `rank << 32 | entry`: one integer compare orders by rank, then by
/// table order, and the low half finds the entry.
type Key = u64;

fn key(rank: u32, entry: u32) -> Key {
    (u64::from(rank) << 32) | u64::from(entry)
}

fn entry_of(key: Key) -> usize {
    (key & 0xffff_ffff) as usize
}

/// A run of candidates in [`PathIndex::keys`].
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

/// One hostname group's index, compact once built: every candidate list lies in one array and
/// trie children are sorted slices rather than a hash map per node. An index lives as long as
/// its table, in every VM, so it is built with growable maps and lists ([`PathBuilder`]) and
/// then frozen.
#[derive(Debug, Default)]
pub struct PathIndex {
    exact: FxHashMap<Box<str>, Span>,
    /// Node 0 is the root, the prefix `/`.
    trie: Box<[TrieNode]>,
    /// Regex paths not under a known directory (see [`regex_dir`]): tried for every path.
    regex: Span,
    /// Every candidate list, each sorted by key, end to end.
    keys: Box<[Key]>,
}

#[derive(Debug, Default)]
struct TrieNode {
    /// Child segments, sorted, for a binary search.
    children: Box<[(Box<str>, u32)]>,
    /// Prefix candidates ending at this node, and regex paths under its directory.
    here: Span,
}

/// A [`PathIndex`] being built.
#[derive(Debug, Default)]
struct PathBuilder {
    exact: FxHashMap<Box<str>, Vec<Key>>,
    trie: Vec<BuilderNode>,
    regex: Vec<Key>,
}

#[derive(Debug, Default)]
struct BuilderNode {
    children: FxHashMap<Box<str>, u32>,
    here: Vec<Key>,
}

impl PathBuilder {
    fn insert(&mut self, path: &PathMatch, key: Key) {
        match path {
            PathMatch::Exact(p) => self.exact.entry(p.as_str().into()).or_default().push(key),
            PathMatch::Prefix(p) => self.insert_under(p, key),
            // A regex whose matches all lie under a directory waits at that directory's node:
            // only requests whose path walks through it try the regex. Regex and prefix keys
            // share the node's list; `find`'s `holds` checks the regex.
            PathMatch::Regex(p) => match regex_dir(p) {
                Some(dir) => self.insert_under(dir, key),
                None => self.regex.push(key),
            },
        }
    }

    /// Adds `key` to the trie node of `prefix`, creating the nodes on the way.
    fn insert_under(&mut self, prefix: &str, key: Key) {
        let mut node = self.node(0);
        for segment in segments(prefix) {
            let next = self.trie.len() as u32;
            let child = match self.trie.get_mut(node) {
                Some(n) => *n.children.entry(segment.into()).or_insert(next),
                None => return,
            };
            node = self.node(child as usize);
        }
        if let Some(n) = self.trie.get_mut(node) {
            n.here.push(key);
        }
    }

    /// Index of node `i`, creating it (and the root) when it does not exist yet.
    fn node(&mut self, i: usize) -> usize {
        while self.trie.len() <= i {
            self.trie.push(BuilderNode::default());
        }
        i
    }

    /// Sorts every candidate list and lays them end to end.
    fn finish(self) -> PathIndex {
        let mut keys = Vec::new();
        let mut span = |mut list: Vec<Key>| {
            list.sort_unstable();
            let start = keys.len() as u32;
            keys.extend_from_slice(&list);
            Span {
                start,
                len: list.len() as u32,
            }
        };
        let mut exact: FxHashMap<Box<str>, Span> = self
            .exact
            .into_iter()
            .map(|(path, list)| (path, span(list)))
            .collect();
        exact.shrink_to_fit();
        let trie = self
            .trie
            .into_iter()
            .map(|n| {
                let mut children: Vec<(Box<str>, u32)> = n.children.into_iter().collect();
                children.sort_unstable();
                TrieNode {
                    children: children.into_boxed_slice(),
                    here: span(n.here),
                }
            })
            .collect();
        let regex = span(self.regex);
        PathIndex {
            exact,
            trie,
            regex,
            keys: keys.into_boxed_slice(),
        }
    }
}

impl PathIndex {
    fn list(&self, span: Span) -> &[Key] {
        let start = span.start as usize;
        self.keys
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    /// The lowest-ranked entry for `path` that satisfies `holds` (which checks everything but an
    /// exact or prefix path: a regex path is checked by `holds` too).
    pub fn find<'e, E>(
        &self,
        path: &str,
        entries: &'e [E],
        holds: impl Fn(&E) -> bool,
    ) -> Option<&'e E> {
        let mut lists: SmallVec<[&[Key]; 8]> = SmallVec::new();
        if let Some(&span) = self.exact.get(path) {
            lists.push(self.list(span));
        }
        let mut node = self.trie.first();
        let mut rest = segments(path);
        while let Some(n) = node {
            if n.here.len > 0 {
                lists.push(self.list(n.here));
            }
            node = rest
                .next()
                .and_then(|s| {
                    let i = n.children.binary_search_by(|(c, _)| (**c).cmp(s)).ok()?;
                    n.children.get(i)
                })
                .and_then(|&(_, c)| self.trie.get(c as usize));
        }
        if self.regex.len > 0 {
            lists.push(self.list(self.regex));
        }
        // k-way merge by key; k is the path depth plus two, so a linear pick of the minimum head
        // is cheaper than a heap.
        loop {
            let (slot, &head) = lists
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.first().map(|h| (i, h)))
                .min_by_key(|&(_, h)| *h)?;
            if let Some(entry) = entries.get(entry_of(head)) {
                if holds(entry) {
                    return Some(entry);
                }
            }
            if let Some(list) = lists.get_mut(slot) {
                *list = list.get(1..).unwrap_or_default();
            }
        }
    }
}

/// Path segments for prefix matching: split on `/`, a trailing `/` ignored, so `/abc`, `/abc/`
/// give `["abc"]` and `/` gives none (PathPrefix: "split by `/` ... element by element ... a
/// trailing `/` is ignored"). A path that does not start with `/` (`*` of `OPTIONS *`, or a
/// malformed `a/b`) gives none too: it is under no prefix but `/`.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or("");
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

/// The directory every path matched by the `RegularExpression` `pattern` lies under, when the
/// pattern spells it out: `/api/v1/users/[0-9]+` → `/api/v1/users` (each match starts with
/// `/api/v1/users/`, so its segments start with `api`, `v1`, `users`). `None` when that cannot
/// be read off the pattern safely, or the directory would be `/` (the root: no gain).
///
/// Conservative on purpose. A pattern containing `|` or `)` is never indexed: without them the
/// anchored regex `^(?:pattern)$` has no alternation and no group (a `(` would stay unclosed),
/// so it is a plain concatenation that starts with the pattern's leading literal characters.
/// Those are read up to the first character that is not plainly literal; a quantifier right
/// after them (`?`, `*`, `{`) makes their last character optional, so it is dropped. The
/// directory is the literal text before its last `/`, and must be `/seg[/seg...]` with no empty
/// segment.
fn regex_dir(pattern: &str) -> Option<&str> {
    if pattern.contains(['|', ')']) {
        return None;
    }
    let plain = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '/' | '-' | '_' | '~' | '%' | ',' | ';' | '=' | ':' | '@' | '!' | '&'
            )
    };
    let end = pattern.find(|c: char| !plain(c)).unwrap_or(pattern.len());
    let mut literal = pattern.get(..end)?;
    if matches!(pattern.get(end..end + 1), Some("?" | "*" | "{")) {
        literal = literal.get(..end.checked_sub(1)?)?;
    }
    let dir = literal.get(..literal.rfind('/')?)?;
    let indexable = dir.len() > 1 && dir.starts_with('/') && !dir.contains("//");
    indexable.then_some(dir)
}

/// Indexes one parent's attachments into hostname groups. Entries are numbered per attachment, in
/// the parent's attachment order (the table order the reference router breaks ties by); each is
/// the position of its compiled match in the table's list.
pub fn compile_groups(
    table: &ValidTable,
    attachments: &[Attachment],
    entries: &mut Vec<u32>,
) -> HostIndex<PathIndex> {
    let mut groups: HostIndex<PathBuilder> = HostIndex::default();
    for attachment in attachments {
        let (start, matches) = table.route_matches(attachment.route);
        let first = entries.len();
        entries.extend((start..start + matches.len()).map(|i| i as u32));
        // The paths are read from the table, in the order the checked matches were made (rules,
        // then matches), so the compiled matches need not carry a copy.
        let paths = table
            .table()
            .routes
            .get(attachment.route as usize)
            .into_iter()
            .flat_map(|r| &r.rules)
            .flat_map(|rule| &rule.matches)
            .map(|m| &m.path);
        for pattern in attachment.host_patterns() {
            let group = groups.get_or_insert_with(pattern, PathBuilder::default);
            for ((i, m), path) in (first..).zip(matches).zip(paths.clone()) {
                group.insert(path, key(m.rank, i as u32));
            }
        }
    }
    groups.map(PathBuilder::finish)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_directory() {
        assert_eq!(regex_dir("/api/v1/users/[0-9]+"), Some("/api/v1/users"));
        assert_eq!(regex_dir("/api/v1/us[a-z]+/x"), Some("/api/v1"));
        assert_eq!(regex_dir("/a/.*"), Some("/a"));
        assert_eq!(regex_dir("/a/b"), Some("/a"));
        // A quantifier makes the last literal character optional: `/a/b/?` matches `/a/b`.
        assert_eq!(regex_dir("/a/b/?"), Some("/a"));
        assert_eq!(regex_dir("/a/b/*x"), Some("/a"));
        assert_eq!(regex_dir("/a/b/{0,1}x"), Some("/a"));
        assert_eq!(regex_dir("/a/b/+"), Some("/a/b"));
        // The root, or nothing safe to read.
        for pattern in [
            "/a",
            "/[ab]+",
            "/ab?",
            ".*",
            "",
            "a/b/c",
            "/a(/.*)?",
            "/(a|b)/b",
            "/a/b|/c/d/e",
            "/a/b/)*(?:x",
            "(?i)/a/b/c",
            "\\/a/b/c",
            "/a//b/c",
            "//a/b",
        ] {
            assert_eq!(regex_dir(pattern), None, "{pattern}");
        }
    }

    #[test]
    fn segments_ignore_trailing_slash() {
        let s = |p| segments(p).collect::<Vec<_>>();
        assert_eq!(s("/"), Vec::<&str>::new());
        assert_eq!(s("/abc"), vec!["abc"]);
        assert_eq!(s("/abc/"), vec!["abc"]);
        assert_eq!(s("/abc/def"), vec!["abc", "def"]);
        assert_eq!(s("/abc//def"), vec!["abc", "", "def"]);
        // Not absolute: under no prefix but `/` (`/a` must not match `a/b`).
        assert_eq!(s("a/b"), Vec::<&str>::new());
        assert_eq!(s("*"), Vec::<&str>::new());
    }
}
