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
/// Compiled-program size limit per regex, in bytes. regex-lite's matching costs up to
/// program × input; 8 KiB (Envoy's RE2 default `max_program_size` is 100 instructions of a few
/// bytes, so this is still generous) keeps one regex test on a [`MAX_INPUT_LEN`] value well under a
/// millisecond.
pub const SIZE_LIMIT: usize = 8 * 1024;
/// Longest value (path, header value joined, query parameter) a regex is run against, in bytes.
/// Matching is linear in the input, but Envoy lets a header reach 60 KiB, or more when it is sent
/// many times and joined; a longer value does not match, and the host counts it
/// (`gammaroute_regex_input_too_long_total`). Routing keys (paths, tokens, versions) are far shorter.
pub const MAX_INPUT_LEN: usize = 4096;
/// Deepest nesting of groups and repetitions.
pub const NEST_LIMIT: u32 = 32;

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    #[error("pattern is {len} bytes, the limit is {MAX_PATTERN_LEN}")]
    TooLong { len: usize },
    /// regex-lite's own reason (a syntax error, or a limit above): its error has no kinds.
    #[error("{0}")]
    Refused(String),
}

/// Compiles `pattern` anchored at both ends, within the limits above.
pub fn compile(pattern: &str) -> Result<Regex, RegexError> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(RegexError::TooLong { len: pattern.len() });
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| RegexError::Refused(e.to_string()))
}

/// Whether `re` matches `input`, or `None` when `input` is longer than [`MAX_INPUT_LEN`] (the
/// caller treats that as no match and counts it). Both routers test regexes through here.
pub fn bounded_match(re: &Regex, input: &str) -> Option<bool> {
    (input.len() <= MAX_INPUT_LEN).then(|| re.is_match(input))
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
        assert_eq!(
            compile(&"a".repeat(MAX_PATTERN_LEN + 1)).err(),
            Some(RegexError::TooLong {
                len: MAX_PATTERN_LEN + 1
            })
        );
        assert!(compile("(a{1000}){1000}").is_err());
        assert!(compile(&format!("{}x{}", "(".repeat(40), ")".repeat(40))).is_err());
        // Programs beyond 8 KiB are refused (64 KiB accepted this one).
        assert!(compile("[a-z0-9]{1,20}(/[a-z0-9]{1,20}){1,20}").is_err());
        assert!(compile("/api/v[0-9]+/(users|orders)/[0-9]{1,12}").is_ok());
    }

    #[test]
    fn long_inputs_do_not_match() {
        let re = compile("(a+)+b").unwrap();
        assert_eq!(bounded_match(&re, "aab"), Some(true));
        let long = format!("{}b", "a".repeat(MAX_INPUT_LEN - 1));
        assert_eq!(bounded_match(&re, &long), Some(true));
        let longer = format!("{}b", "a".repeat(MAX_INPUT_LEN));
        assert_eq!(bounded_match(&re, &longer), None);
    }
}
