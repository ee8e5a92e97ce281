//! The proxy-wasm header-map encoding (ABI 0.2.1), used for header maps passed across the VM
//! boundary: a little-endian `u32` pair count, then `u32` key and value sizes for each pair, then
//! each key and value followed by a NUL byte. Pure, so hosts written in Rust (the test host) can
//! share it.

/// Encodes pairs in the proxy-wasm map format.
pub fn encode<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let data: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len32(v.as_ref().len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decodes the proxy-wasm map format; `None` if the bytes are malformed (sizes past the end).
/// Values that are not UTF-8 are decoded lossily: header values are ASCII in practice.
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let n = decode_into(bytes, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// [`decode`] into reused storage: the pairs land in `pool[..n]` (`n` returned), overwriting
/// earlier contents and keeping each `String`'s capacity, so a host adapter that decodes every
/// request's headers into the same pool stops allocating once it has seen its largest request.
/// Entries past `n` are stale. `None` if the bytes are malformed (then `pool` is unspecified).
pub fn decode_into(bytes: &[u8], pool: &mut Vec<(String, String)>) -> Option<usize> {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = word(0)?;
    let header_len = count.checked_mul(8)?.checked_add(4)?;
    if header_len > bytes.len() {
        return None;
    }
    let mut at = header_len;
    let mut take = |n: usize, into: &mut String| -> Option<()> {
        let field = bytes.get(at..at.checked_add(n)?)?;
        at = at.checked_add(n)?.checked_add(1)?; // skip the NUL
        into.clear();
        into.push_str(&String::from_utf8_lossy(field));
        Some(())
    };
    for i in 0..count {
        let (k, v) = (word(4 + i * 8)?, word(8 + i * 8)?);
        if pool.len() <= i {
            pool.push((String::new(), String::new()));
        }
        let (key, value) = pool.get_mut(i)?;
        take(k, key)?;
        take(v, value)?;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = vec![(":path", "/a?b"), ("x-empty", ""), ("k", "v")];
        let bytes = encode(&pairs);
        let back = decode(&bytes).unwrap();
        assert_eq!(
            back,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(decode(&encode::<&str, &str>(&[])).unwrap(), vec![]);
    }

    #[test]
    fn malformed_is_none_not_panic() {
        let bytes = encode(&[("key", "value")]);
        for cut in 0..bytes.len() - 1 {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_none());
        let mut huge = encode(&[("k", "v")]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_none());
    }

    #[test]
    fn decode_into_reuses_the_pool() {
        let mut pool = Vec::new();
        let big = encode(&[(":path", "/a/long/path"), ("k", "v"), ("x", "y")]);
        assert_eq!(decode_into(&big, &mut pool), Some(3));
        let small = encode(&[(":path", "/b")]);
        let capacity = pool[0].1.capacity();
        assert_eq!(decode_into(&small, &mut pool), Some(1));
        assert_eq!(pool[0], (":path".to_string(), "/b".to_string()));
        assert_eq!(
            pool[0].1.capacity(),
            capacity,
            "the value's buffer is reused"
        );
        assert_eq!(pool.len(), 3, "stale entries stay for the next request");
        assert_eq!(decode_into(&[], &mut pool), None);
    }
}
