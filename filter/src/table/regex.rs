//! The one place regular expressions from a table are compiled, so validation and the router
//! agree on the dialect and the limits.
//!
//! Dialect: [regex-lite](https://docs.rs/regex-lite) (RE2-like syntax without Unicode classes),
//! chosen over `regex` for an ~800 KB smaller `.wasm`. Gateway API leaves the `RegularExpression`
//! dialect implementation-specific; ours always matches the *whole* value, as Envoy's `safe_regex`
//! does, so `/api/v[0-9]+` does not match `/api/v1/users`.

use regex_lite::{Regex, RegexBuilder};

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Compiled-program size limit per regex, in bytes.
pub const SIZE_LIMIT: usize = 64 * 1024;
/// Deepest nesting of groups and repetitions.
pub const NEST_LIMIT: u32 = 32;

/// Compiles `pattern` anchored at both ends, within the limits above.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "pattern is {} bytes, the limit is {MAX_PATTERN_LEN}",
            pattern.len()
        ));
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_value_only() {
        let re = compile("/api/v[0-9]+").unwrap();
        assert!(re.is_match("/api/v12"));
        assert!(!re.is_match("/api/v1/users"));
        assert!(!re.is_match("x/api/v1"));
        // An alternation cannot escape the anchors.
        let alt = compile("a|b").unwrap();
        assert!(alt.is_match("b") && !alt.is_match("ab"));
    }

    #[test]
    fn limits_and_syntax_errors() {
        assert!(compile("(").is_err());
        assert!(compile(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(compile("(a{1000}){1000}").is_err());
        assert!(compile(&format!("{}x{}", "(".repeat(40), ")".repeat(40))).is_err());
    }
}
