//! The journal's record format, free of IO but for the reader it is given.
//!
//! A record: the payload's length (u32 LE), the CRC-32 of the payload (u32
//! LE), the payload: a tag octet, three i64 LE, and the key's octets. Every
//! record holds a row's new value, not a difference, so replaying a journal
//! twice (a crash between the commit and the journal's removal) changes
//! nothing. A torn last record (a power loss mid-write) fails its length or
//! CRC and ends the replay.

use super::TripletRow;
use std::io::{BufReader, Read};

/// One row's new value: a journal record, and a change waiting for SQLite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Grey(String, TripletRow),
    /// Client network, deliveries, last seen.
    Awl(String, i64, i64),
    /// Key, window start, count.
    Rate(String, i64, i64),
}

/// The tag and the three numbers.
const FIXED: usize = 25;
/// Keys are Postfix attributes, far under this; a longer "record" is
/// damage, not data.
const MAX_RECORD: usize = 64 * 1024;

pub fn encode(c: &Change, out: &mut Vec<u8>) {
    let (tag, key, a, b, n) = match c {
        Change::Grey(k, r) => (b'g', k, r.first_seen, r.last_seen, r.passed as i64),
        Change::Awl(k, count, last) => (b'a', k, *count, *last, 0),
        Change::Rate(k, w, count) => (b'r', k, *w, *count, 0),
    };
    let mut payload = Vec::with_capacity(FIXED + key.len());
    payload.push(tag);
    for v in [a, b, n] {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    payload.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Reads records until the end or the first damaged one. Returns the
/// changes and, when it stopped early, the offset of the damage.
pub fn decode_all(r: impl Read) -> std::io::Result<(Vec<Change>, Option<u64>)> {
    let mut r = BufReader::new(r);
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let mut head = [0u8; 8];
        match read_full(&mut r, &mut head)? {
            0 => return Ok((out, None)),
            8 => {}
            _ => return Ok((out, Some(offset))),
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if !(FIXED..=MAX_RECORD).contains(&len) {
            return Ok((out, Some(offset)));
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut r, &mut payload)? != len || crc32fast::hash(&payload) != crc {
            return Ok((out, Some(offset)));
        }
        match decode(&payload) {
            Some(c) => out.push(c),
            None => return Ok((out, Some(offset))),
        }
        offset += 8 + len as u64;
    }
}

fn decode(payload: &[u8]) -> Option<Change> {
    let num = |i: usize| -> Option<i64> {
        Some(i64::from_le_bytes(
            payload.get(1 + 8 * i..9 + 8 * i)?.try_into().ok()?,
        ))
    };
    let key = String::from_utf8(payload.get(FIXED..)?.to_vec()).ok()?;
    let (a, b, n) = (num(0)?, num(1)?, num(2)?);
    // Strict: only what encode writes, so that a record decodes to exactly
    // one change and encodes back to the same octets.
    Some(match (payload.first()?, n) {
        (b'g', 0 | 1) => Change::Grey(
            key,
            TripletRow {
                first_seen: a,
                last_seen: b,
                passed: n == 1,
            },
        ),
        (b'a', 0) => Change::Awl(key, a, b),
        (b'r', 0) => Change::Rate(key, a, b),
        _ => return None,
    })
}

/// Reads until `buf` is full or the input ends; returns the octets read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_journal_decodes_up_to_the_damage() {
        let mut buf = Vec::new();
        let a = Change::Grey(
            "a/b/c".into(),
            TripletRow {
                first_seen: 1,
                last_seen: 2,
                passed: true,
            },
        );
        let b = Change::Awl("198.51.100".into(), 5, 9);
        let c = Change::Rate("m:0:x".into(), 60, 3);
        for ch in [&a, &b, &c] {
            encode(ch, &mut buf);
        }
        assert_eq!(
            decode_all(&buf[..]).unwrap(),
            (vec![a.clone(), b.clone(), c.clone()], None)
        );
        // Cut in the last record's payload (a power loss mid-write).
        let third = buf.len() - (8 + FIXED + 5);
        assert_eq!(
            decode_all(&buf[..buf.len() - 3]).unwrap(),
            (vec![a.clone(), b.clone()], Some(third as u64))
        );
        // Cut in the last record's head.
        assert_eq!(decode_all(&buf[..third + 4]).unwrap().1, Some(third as u64));
        // A flipped bit in the second record: its CRC fails; the first stands.
        let mut flipped = buf.clone();
        flipped[8 + FIXED + 5 + 8 + 3] ^= 1;
        assert_eq!(
            decode_all(&flipped[..]).unwrap(),
            (vec![a.clone()], Some((8 + FIXED + 5) as u64))
        );
        // Lengths out of range are not believed.
        assert_eq!(
            decode_all(&[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0][..]).unwrap(),
            (vec![], Some(0))
        );
        assert_eq!(
            decode_all(&[3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3][..]).unwrap(),
            (vec![], Some(0))
        );
    }

    #[test]
    fn keys_as_odd_as_postfix_may_send_round_trip() {
        let c = Change::Grey(
            "x\t\n\u{e9}/\"quoted local\"@y".into(),
            TripletRow {
                first_seen: -1,
                last_seen: i64::MAX,
                passed: false,
            },
        );
        let mut buf = Vec::new();
        encode(&c, &mut buf);
        assert_eq!(decode_all(&buf[..]).unwrap(), (vec![c], None));
        // An unknown tag with a good CRC is damage too.
        let mut payload = vec![b'z'];
        payload.extend_from_slice(&[0; 24]);
        let mut rec = (payload.len() as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        rec.extend_from_slice(&payload);
        assert_eq!(decode_all(&rec[..]).unwrap(), (vec![], Some(0)));
        // So is a "passed" other than 0 or 1.
        let mut payload = vec![b'g'];
        payload.extend_from_slice(&[0; 16]);
        payload.extend_from_slice(&2i64.to_le_bytes());
        let mut rec = (payload.len() as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        rec.extend_from_slice(&payload);
        assert_eq!(decode_all(&rec[..]).unwrap(), (vec![], Some(0)));
    }
}
