//! Reading a large policy file: the `[[lookup]]` tables in parallel chunks.
//!
//! Contract: [`read`] returns exactly what `toml::from_str::<PolicyFile>(text)`
//! returns for every text, only faster and in bounded memory when the text
//! holds many lookup records: a TOML document of 1M `[[lookup]]` tables takes
//! gigabytes as one parse tree, while chunks of [`CHUNK`] records parsed on
//! every core take megabytes.
//!
//! How, in order:
//! 1. A text under [`SMALL`] bytes, or one with a multi-line string (`"""` or
//!    `'''`: a line inside one could look like a table header), is parsed whole.
//! 2. The text is split into the `[[lookup]]` tables and the rest, at table
//!    headers (a line that starts with `[`). A header that names `lookup` in
//!    any other form (`[lookup]`, `[[lookup.x]]`), an indented line starting
//!    with `[` or a carriage return makes the text parse whole, so TOML's own
//!    rules apply.
//! 3. The rest is parsed as a [`PolicyFile`] (it has no lookup tables), the
//!    lookup tables in chunks as `{ lookup = [...] }`, each chunk on a scoped
//!    thread; the records are joined in file order.
//! 4. Any error in any part: the text is parsed whole, so that the error (line,
//!    column, message) is exactly the one a whole parse reports.

use crate::file::{LookupFile, PolicyFile};
use serde::Deserialize;

/// Texts shorter than this are parsed whole.
pub const SMALL: usize = 1 << 20;
/// Lookup tables per chunk.
pub const CHUNK: usize = 8192;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chunk {
    lookup: Vec<LookupFile>,
}

/// Parse policy text (see the module contract).
///
/// # Errors
/// The error of parsing `text` whole.
pub fn read(text: &str) -> Result<PolicyFile, toml::de::Error> {
    if text.len() < SMALL || text.contains("\"\"\"") || text.contains("'''") {
        return toml::from_str(text);
    }
    split_parse(text).map_or_else(|| toml::from_str(text), Ok)
}

/// Steps 2 and 3; `None` when the text must be parsed whole.
fn split_parse(text: &str) -> Option<PolicyFile> {
    let mut rest = String::new();
    let mut chunks: Vec<String> = Vec::new();
    let mut tables = 0usize;
    // Headers are found by searching for "\n[" (fast); a text with an
    // indented line starting with `[` or a carriage return is parsed whole.
    if text.contains("\n [") || text.contains("\n\t[") || text.contains("\r") {
        return None;
    }
    let mut starts: Vec<usize> = vec![0];
    starts.extend(text.match_indices("\n[").map(|(i, _)| i + 1).filter(|&i| i > 0));
    starts.push(text.len());
    for w in starts.windows(2) {
        let block = text.get(w[0]..w[1])?;
        // The first block may start with top-level keys instead of a header.
        let header_line = if block.starts_with('[') { block.split('\n').next().unwrap_or_default() } else { "" };
        let header = header_line.split('#').next().unwrap_or_default().trim_end();
        let in_lookup = header == "[[lookup]]";
        if !in_lookup && header.trim_start_matches('[').trim_start().starts_with("lookup") {
            return None;
        }
        if in_lookup {
            if tables.is_multiple_of(CHUNK) {
                chunks.push(String::with_capacity(CHUNK * 96));
            }
            tables += 1;
            chunks.last_mut()?.push_str(block);
        } else {
            rest.push_str(block);
        }
    }
    let mut file: PolicyFile = toml::from_str(&rest).ok()?;
    drop(rest);
    let threads = std::thread::available_parallelism().map_or(1, usize::from).max(1);
    let per_thread = chunks.len().div_ceil(threads).max(1);
    let parsed: Vec<Option<Vec<Vec<LookupFile>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks.chunks(per_thread).map(|group| s.spawn(move || group.iter().map(|c| toml::from_str::<Chunk>(c).ok().map(|c| c.lookup)).collect::<Option<Vec<_>>>())).collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    let mut lookup = Vec::with_capacity(tables);
    for group in parsed {
        for chunk in group? {
            lookup.extend(chunk);
        }
    }
    file.lookup = lookup;
    Some(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::example::BLUE_RED_HOST1;

    /// The worked example padded with `n` extra records, so it is parsed in parts.
    fn big(n: usize) -> String {
        let mut s = BLUE_RED_HOST1.to_string();
        for k in 0..n {
            s += &format!("\n[[lookup]] # record {k}\nca = \"10.0.{}.{}\"\nvsid = 5001\nmac = \"00:15:5d:09:{:02x}:{:02x}\"\npa = \"192.168.4.22\"\n", k / 250, 2 + k % 250, k / 256, k % 256);
        }
        s
    }

    #[test]
    fn a_large_text_splits_and_reads_exactly_as_a_whole_parse() {
        let text = big(20_000);
        assert!(text.len() > SMALL);
        let whole: PolicyFile = toml::from_str(&text).unwrap();
        let split = split_parse(&text).expect("a text starting with [host] splits");
        assert_eq!(split, whole);
        assert_eq!(read(&text).unwrap(), whole);
    }

    #[test]
    fn a_text_opening_with_a_lookup_table_splits_too() {
        let text = format!("[[lookup]]\nca = \"10.0.0.9\"\nvsid = 5001\nmac = \"00:15:5d:01:00:09\"\npa = \"192.168.4.22\"\n{}", big(20_000));
        let whole: PolicyFile = toml::from_str(&text).unwrap();
        assert_eq!(split_parse(&text).expect("splits"), whole);
        assert_eq!(whole.lookup.len(), 20_006);
    }

    #[test]
    fn errors_are_those_of_a_whole_parse() {
        let text = big(20_000) + "\n[[lookup]]\nca = \"10.9.9.9\"\nvsid = 5001\nmac = \"00:15:5d:09:00:01\"\npa = \"192.168.4.22\"\nnot_a_field = 1\n";
        let whole = toml::from_str::<PolicyFile>(&text).unwrap_err().to_string();
        assert_eq!(read(&text).unwrap_err().to_string(), whole);
        // A dotted lookup header and a multi-line string: parsed whole.
        let dotted = big(20_000) + "\n[lookup.x]\na = 1\n";
        assert!(split_parse(&dotted).is_none());
        assert_eq!(read(&dotted).unwrap_err().to_string(), toml::from_str::<PolicyFile>(&dotted).unwrap_err().to_string());
        let multi = big(20_000).replacen("vsid = 5001\n", "vsid = 5001\nvm_name = \"\"\"\n[[lookup]]\"\"\"\n", 1);
        assert_eq!(read(&multi).map_err(|e| e.to_string()), toml::from_str::<PolicyFile>(&multi).map_err(|e| e.to_string()));
    }
}
