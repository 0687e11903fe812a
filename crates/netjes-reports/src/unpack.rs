//! gzip and zip, opened with caps: the decompressed size is counted on the
//! output stream as it comes, never taken from a header (a zip bomb says
//! it is small), and a zip gives at most `max_zip_entries` files.
//!
//! The form is told by the first octets, not by the name or the content
//! type, which real reporters get wrong (an .xml.gz sent as
//! application/octet-stream, a zip named .gz).

use crate::{Limits, ReportError};
use std::io::Read;

/// One report document, unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Reads at most `cap` octets from `r`; over it is an error.
fn read_capped(mut r: impl Read, cap: u64) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::new();
    let n = (&mut r)
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReportError::Archive(e.to_string()))?;
    if n as u64 > cap {
        return Err(ReportError::TooLarge(cap));
    }
    Ok(out)
}

/// The documents in `bytes`: itself, or what its gzip or zip holds.
pub fn documents(name: &str, bytes: &[u8], limits: &Limits) -> Result<Vec<Document>, ReportError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        // One gzip member. Mimecast appends bytes after it; a multi-member
        // reader would take them for a second member and fail, so they are
        // left unread.
        let out = read_capped(flate2::read::GzDecoder::new(bytes), limits.max_report_bytes)?;
        let inner = name.trim_end_matches(".gz").trim_end_matches(".GZ");
        return Ok(vec![Document {
            name: inner.to_string(),
            bytes: out,
        }]);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return unzip(bytes, limits);
    }
    if bytes.len() as u64 > limits.max_report_bytes {
        return Err(ReportError::TooLarge(limits.max_report_bytes));
    }
    Ok(vec![Document {
        name: name.to_string(),
        bytes: bytes.to_vec(),
    }])
}

fn unzip(bytes: &[u8], limits: &Limits) -> Result<Vec<Document>, ReportError> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ReportError::Archive(e.to_string()))?;
    let files: Vec<usize> = (0..z.len())
        .filter(|i| z.by_index(*i).is_ok_and(|f| f.is_file()))
        .collect();
    if files.len() > limits.max_zip_entries {
        return Err(ReportError::TooManyFiles(files.len(), limits.max_zip_entries));
    }
    let mut out = Vec::new();
    for i in files {
        let f = z
            .by_index(i)
            .map_err(|e| ReportError::Archive(e.to_string()))?;
        let name = f.name().to_string();
        // The entry's stated size is not trusted: the cap is on what comes
        // out of the decompressor.
        let data = read_capped(f, limits.max_report_bytes)?;
        out.push(Document { name, bytes: data });
    }
    if out.is_empty() {
        return Err(ReportError::Archive("the archive holds no file".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_is_stopped_at_the_cap_on_the_output() {
        let bomb = gz(&vec![b'<'; 30 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024, "{} octets", bomb.len());
        let l = Limits {
            max_report_bytes: 1024 * 1024,
            ..Default::default()
        };
        assert_eq!(documents("x.xml.gz", &bomb, &l), Err(ReportError::TooLarge(1024 * 1024)));
        // Bytes after the member (Mimecast) are left alone.
        let mut trailing = gz(b"<feedback/>");
        trailing.extend_from_slice(b"\r\n--boundary--\r\n");
        let d = documents("x.xml.gz", &trailing, &l).unwrap();
        assert_eq!(d[0].bytes, b"<feedback/>");
        assert_eq!(d[0].name, "x.xml");
    }

    #[test]
    fn a_zip_gives_one_file_within_the_cap() {
        let zip_of = |files: &[(&str, Vec<u8>)]| {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            for (n, d) in files {
                w.start_file(*n, o).unwrap();
                w.write_all(d).unwrap();
            }
            w.finish().unwrap().into_inner()
        };
        let l = Limits {
            max_report_bytes: 1024 * 1024,
            ..Default::default()
        };
        let one = zip_of(&[("r.xml", b"<feedback/>".to_vec())]);
        assert_eq!(documents("r.zip", &one, &l).unwrap()[0].bytes, b"<feedback/>");
        let two = zip_of(&[("a.xml", vec![]), ("b.xml", vec![])]);
        assert_eq!(documents("r.zip", &two, &l), Err(ReportError::TooManyFiles(2, 1)));
        let bomb = zip_of(&[("r.xml", vec![b'a'; 20 * 1024 * 1024])]);
        assert_eq!(documents("r.zip", &bomb, &l), Err(ReportError::TooLarge(1024 * 1024)));
        assert!(matches!(documents("r.zip", b"PK\x03\x04garbage", &l), Err(ReportError::Archive(_))));
    }
}
