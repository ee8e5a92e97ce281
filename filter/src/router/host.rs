//! Hostname index: exact names, `*.` wildcard suffixes, and a catch-all, visited in Gateway API
//! precedence order for a request's Host.

use rustc_hash::FxHashMap;

/// Values keyed by a hostname pattern: `Some("shop.example")`, `Some("*.example")` or `None` (any).
#[derive(Debug)]
pub struct HostIndex<T> {
    exact: FxHashMap<Box<str>, T>,
    /// Keyed by the suffix with its leading dot: `*.example.com` → `.example.com`.
    wildcard: FxHashMap<Box<str>, T>,
    any: Option<T>,
}

impl<T> Default for HostIndex<T> {
    fn default() -> Self {
        HostIndex {
            exact: FxHashMap::default(),
            wildcard: FxHashMap::default(),
            any: None,
        }
    }
}

impl<T> HostIndex<T> {
    /// The value for a pattern, created by `make` if absent.
    pub fn get_or_insert_with(
        &mut self,
        pattern: Option<&str>,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        let (map, key) = match pattern {
            None => return self.any.get_or_insert_with(make),
            Some(p) => match p.strip_prefix('*') {
                Some(suffix) => (&mut self.wildcard, suffix),
                None => (&mut self.exact, p),
            },
        };
        map.entry(key.into()).or_insert_with(make)
    }

    /// Values whose pattern matches `host` (lowercase, no port), most specific first: the exact
    /// name, then wildcards from the longest suffix to the shortest, then the catch-all.
    /// A wildcard needs at least one label before its suffix: `*.example.com` matches
    /// `a.example.com` and `a.b.example.com`, not `example.com`.
    pub fn lookup<'s>(&'s self, host: &'s str) -> impl Iterator<Item = &'s T> + 's {
        let exact = self.exact.get(host);
        // Most indexes have no wildcard at all: then the Host is not even scanned for dots.
        let dots = (!self.wildcard.is_empty()).then(|| {
            host.bytes()
                .enumerate()
                .filter(|&(i, b)| b == b'.' && i > 0)
                .map(|(i, _)| i)
        });
        let wildcards = dots
            .into_iter()
            .flatten()
            .filter_map(move |i| self.wildcard.get(host.get(i..)?));
        exact.into_iter().chain(wildcards).chain(self.any.as_ref())
    }

    /// Drops the maps' spare capacity once the index is built (it lives as long as the table).
    pub fn shrink_to_fit(&mut self) {
        self.exact.shrink_to_fit();
        self.wildcard.shrink_to_fit();
    }

    /// The same patterns with every value converted, the maps without spare capacity.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> HostIndex<U> {
        let mut out = HostIndex {
            exact: self.exact.into_iter().map(|(k, v)| (k, f(v))).collect(),
            wildcard: self.wildcard.into_iter().map(|(k, v)| (k, f(v))).collect(),
            any: self.any.map(f),
        };
        out.shrink_to_fit();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(patterns: &[Option<&str>]) -> HostIndex<usize> {
        let mut idx = HostIndex::default();
        for (i, p) in patterns.iter().enumerate() {
            idx.get_or_insert_with(*p, || i);
        }
        idx
    }

    fn found(idx: &HostIndex<usize>, host: &str) -> Vec<usize> {
        idx.lookup(host).copied().collect()
    }

    #[test]
    fn precedence_exact_then_longest_wildcard_then_any() {
        // HTTPRouteSpec.hostnames precedence: non-wildcard characters, then matching characters.
        let idx = index(&[
            None,
            Some("*.example.com"),
            Some("*.b.example.com"),
            Some("a.b.example.com"),
        ]);
        assert_eq!(found(&idx, "a.b.example.com"), vec![3, 2, 1, 0]);
        assert_eq!(found(&idx, "x.b.example.com"), vec![2, 1, 0]);
        assert_eq!(found(&idx, "b.example.com"), vec![1, 0]);
        assert_eq!(found(&idx, "other.org"), vec![0]);
    }

    #[test]
    fn wildcard_needs_one_more_label() {
        // "*.example.com" matches "test.example.com" and "foo.test.example.com", not "example.com".
        let idx = index(&[Some("*.example.com")]);
        assert_eq!(found(&idx, "example.com"), Vec::<usize>::new());
        assert_eq!(found(&idx, ".example.com"), Vec::<usize>::new());
        assert_eq!(found(&idx, "foo.test.example.com"), vec![0]);
    }

    #[test]
    fn first_insert_wins() {
        let mut idx = HostIndex::default();
        idx.get_or_insert_with(Some("a"), || 1);
        *idx.get_or_insert_with(Some("a"), || 2) += 10;
        assert_eq!(found(&idx, "a"), vec![11]);
    }
}
