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
    let mut sizes = bytes.chunks_exact(4).map(|c| {
        let mut word = [0u8; 4];
        word.copy_from_slice(c);
        u32::from_le_bytes(word) as usize
    });
    let count = sizes.next()?;
    let header_len = count.checked_mul(8)?.checked_add(4)?;
    if header_len > bytes.len() {
        return None;
    }
    let lens: Vec<(usize, usize)> = (0..count)
        .map(|_| Some((sizes.next()?, sizes.next()?)))
        .collect::<Option<_>>()?;
    let mut at = header_len;
    let mut take = |n: usize| -> Option<String> {
        let field = bytes.get(at..at.checked_add(n)?)?;
        at = at.checked_add(n)?.checked_add(1)?; // skip the NUL
        Some(String::from_utf8_lossy(field).into_owned())
    };
    lens.into_iter()
        .map(|(k, v)| Some((take(k)?, take(v)?)))
        .collect()
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
}
