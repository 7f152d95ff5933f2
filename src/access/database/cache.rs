//! The cache of the last good lists read from the database
//! (`[access.database] cache`): written whole after each good load (a
//! temporary file, fsynced, renamed over the old one, the directory
//! fsynced), read at start when the database can't be reached.
//!
//! JSON, so an operator can read it; mode 0600, since it holds passkeys.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::json;

use super::rows::{info_hash, Cell, Collect, Lists};

const FORMAT: &str = "swarmd-access-cache";

/// Writes `lists` to `path`, whole or not at all.
pub(crate) fn write(path: &Path, lists: &Lists) -> Result<(), String> {
    let hashes: Vec<String> = lists.hashes.iter().map(|h| h.to_string()).collect();
    let text = json!({
        "format": FORMAT,
        "version": 1,
        "info_hashes": hashes,
        "passkeys": lists.passkeys,
    })
    .to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    let result = (|| {
        let _ = fs::remove_file(tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(tmp, path)?;
        // The rename is durable once the directory is.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result.map_err(|e| format!("{}: cannot write the access cache: {e}", path.display()))
}

/// Reads the cache at `path`: None when there is none, an error when it is
/// there but bad.
pub(crate) fn read(path: &Path) -> Result<Option<Lists>, String> {
    let fail = |why: String| format!("{}: {why}", path.display());
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not an access cache: {e}")))?;
    if value["format"] != FORMAT || value["version"] != 1 {
        return Err(fail("not a version 1 swarmd access cache".into()));
    }
    let mut hashes = Collect::new("info_hashes");
    for h in value["info_hashes"].as_array().into_iter().flatten() {
        hashes.push(info_hash(h.as_str().map_or(Cell::Null, Cell::Text)));
    }
    let passkeys = match &value["passkeys"] {
        serde_json::Value::Null => None,
        keys => {
            let mut c = Collect::new("passkeys");
            for pair in keys.as_array().into_iter().flatten() {
                let cell = |i: usize| pair[i].as_str().map_or(Cell::Null, Cell::Text);
                c.push_passkey(cell(0), cell(1));
            }
            Some(c.finish().map_err(fail)?)
        }
    };
    Ok(Some(Lists {
        hashes: hashes.finish().map_err(fail)?,
        passkeys,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::InfoHash;

    #[test]
    fn lists_round_trip_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access-cache.json");
        assert_eq!(read(&path), Ok(None));
        let lists = Lists {
            hashes: vec![InfoHash([1; 20]), InfoHash([0xfe; 20])],
            passkeys: Some(vec![
                ("k1".into(), Some("alice".into())),
                ("k2".into(), None),
            ]),
        };
        write(&path, &lists).unwrap();
        assert_eq!(read(&path), Ok(Some(lists)));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let no_keys = Lists::default();
        write(&path, &no_keys).unwrap();
        assert_eq!(read(&path), Ok(Some(no_keys)));
        fs::write(&path, "{}").unwrap();
        assert!(read(&path).unwrap_err().contains("not a version 1"));
    }
}
