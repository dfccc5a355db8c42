//! Bech32 (BIP 173, the original checksum, not bech32m) as age uses it for
//! `age1…` recipients and `AGE-SECRET-KEY-1…` identities. Unlike BIP 173
//! there is no 90-character limit (age keys stay below it anyway, but the
//! spec does not promise that).

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR: [u32; 5] = [
    0x3b6a_57b2,
    0x2650_8e6d,
    0x1ea1_19fa,
    0x3d42_33dd,
    0x2a14_62b3,
];

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &[u8]) -> impl Iterator<Item = u8> + '_ {
    hrp.iter()
        .map(|c| c >> 5)
        .chain(core::iter::once(0))
        .chain(hrp.iter().map(|c| c & 31))
}

/// Regroups bits; `pad` as BIP 173's convertbits. None when the input has
/// non-zero or excess padding (a non-canonical encoding).
fn convert_bits(data: &[u8], from: u32, to: u32, pad: bool) -> Option<Vec<u8>> {
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let maxv: u32 = (1 << to) - 1;
    let mut out = Vec::with_capacity(data.len() * from as usize / to as usize + 1);
    for &value in data {
        let v = u32::from(value);
        if v >> from != 0 {
            return None;
        }
        acc = (acc << from) | v;
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & maxv) as u8);
        }
    }
    if pad {
        if bits > 0 {
            out.push(((acc << (to - bits)) & maxv) as u8);
        }
    } else if bits >= from || ((acc << (to - bits)) & maxv) != 0 {
        return None;
    }
    Some(out)
}

/// Encodes `data` under the lower-case human-readable part `hrp`.
pub fn encode(hrp: &str, data: &[u8]) -> String {
    // 8 → 5 bits with padding cannot fail.
    let data5 = convert_bits(data, 8, 5, true).unwrap_or_default();
    let chk = polymod(
        hrp_expand(hrp.as_bytes())
            .chain(data5.iter().copied())
            .chain([0u8; 6]),
    ) ^ 1;
    let mut s = String::with_capacity(hrp.len() + 1 + data5.len() + 6);
    s.push_str(hrp);
    s.push('1');
    for d in data5 {
        s.push(char::from(CHARSET[usize::from(d & 31)]));
    }
    for i in 0..6 {
        let d = (chk >> (5 * (5 - i))) & 31;
        s.push(char::from(CHARSET[d as usize]));
    }
    s
}

/// Decodes a Bech32 string (all lower- or all upper-case) into its
/// lower-cased human-readable part and data bytes.
pub fn decode(s: &str) -> Option<(String, Vec<u8>)> {
    let has_lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
    if (has_lower && has_upper) || !s.bytes().all(|b| (33..=126).contains(&b)) {
        return None;
    }
    let s = s.to_ascii_lowercase();
    let sep = s.rfind('1')?;
    let (hrp, rest) = s.split_at(sep);
    let data_part = rest.get(1..)?;
    if hrp.is_empty() || data_part.len() < 6 {
        return None;
    }
    let mut data5 = Vec::with_capacity(data_part.len());
    for c in data_part.bytes() {
        let v = CHARSET.iter().position(|&x| x == c)?;
        data5.push(v as u8);
    }
    if polymod(hrp_expand(hrp.as_bytes()).chain(data5.iter().copied())) != 1 {
        return None;
    }
    let payload = data5.get(..data5.len() - 6)?;
    let bytes = convert_bits(payload, 5, 8, false)?;
    Some((hrp.to_string(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_vector() {
        // BIP 173 valid test vector.
        let (hrp, data) = decode("A12UEL5L").expect("valid");
        assert_eq!(hrp, "a");
        assert!(data.is_empty());
        let s = encode("age", &[7u8; 32]);
        assert_eq!(decode(&s), Some(("age".to_string(), vec![7u8; 32])));
        assert_eq!(
            decode(&s.to_ascii_uppercase()),
            Some(("age".to_string(), vec![7u8; 32]))
        );
    }

    #[test]
    fn rejects_bad_checksums_and_mixed_case() {
        let s = encode("age", &[1u8; 32]);
        let mut flipped = s.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'q' { b'p' } else { b'q' };
        assert_eq!(decode(&String::from_utf8(flipped).expect("ascii")), None);
        let mixed = format!("AGE{}", &s[3..]);
        assert_eq!(decode(&mixed), None);
        assert_eq!(decode("age1"), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode("\u{e9}1qqqqqq"), None);
    }
}
