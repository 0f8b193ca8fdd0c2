//! Grid records as devices receive them through pull: cells and checkpoints.

use prost::Message;

use crate::checkin::Invalid;
use crate::wire;

/// Where a cell sits in the grid: the codes from its top cell down to it, written
/// `/S1/S1-C1/S1-C1-K1/`. A path covers every path that starts with it (the cell and its
/// subtree); `/` (the root) covers everything and names no cell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellPath(String);

impl CellPath {
    /// The root: above every top cell.
    pub fn root() -> CellPath {
        CellPath("/".to_owned())
    }

    /// A path as sent by a peer: `/`, then one or more codes each followed by `/`; codes are
    /// non-empty and have no control characters.
    pub fn parse(text: &str) -> Result<CellPath, Invalid> {
        let bad = |why: &str| Invalid::new("path", "invalid", format!("cell path {text:?}: {why}"));
        if !text.starts_with('/') || !text.ends_with('/') {
            return Err(bad("starts and ends with /"));
        }
        if text.len() > 1 && text[1..text.len() - 1].split('/').any(str::is_empty) {
            return Err(bad("has an empty code"));
        }
        if text.chars().any(char::is_control) {
            return Err(bad("has a control character"));
        }
        Ok(CellPath(text.to_owned()))
    }

    /// The path of `code` below this one.
    pub fn child(&self, code: &str) -> CellPath {
        CellPath(format!("{}{code}/", self.0))
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The codes on the path, top cell first.
    pub fn codes(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The cell's own code (`""` for the root).
    pub fn code(&self) -> &str {
        self.codes().next_back().unwrap_or_default()
    }

    /// The parent cell's code (`""` for a top cell and the root).
    pub fn parent_code(&self) -> &str {
        self.codes().rev().nth(1).unwrap_or_default()
    }

    /// The path of the top cell this one lies in (the root for the root).
    pub fn top(&self) -> CellPath {
        match self.codes().next() {
            Some(top) => CellPath::root().child(top),
            None => CellPath::root(),
        }
    }

    /// The cells above this one with their paths, nearest first (the parent, …, the top cell).
    pub fn ancestors(&self) -> Vec<(&str, CellPath)> {
        let codes: Vec<&str> = self.codes().collect();
        (1..codes.len())
            .rev()
            .map(|n| {
                let path = codes[..n].iter().fold(CellPath::root(), |p, c| p.child(c));
                (codes[n - 1], path)
            })
            .collect()
    }

    /// Whether `path` is this cell or lies below it.
    pub fn covers(&self, path: &str) -> bool {
        covers(&self.0, path)
    }

    /// Whether the cell `code` is on this path (this cell or one above it).
    pub fn passes(&self, code: &str) -> bool {
        self.codes().any(|c| c == code)
    }
}

/// Whether the cell path `path` is the cell at path `ancestor` or lies below it, for paths kept
/// as text (as the store reads them). Paths end in `/`, so `/S1/` never covers `/S10/`.
pub fn covers(ancestor: &str, path: &str) -> bool {
    path.starts_with(ancestor)
}

/// The first text after every path `path` covers, in byte order: the paths `path` covers are
/// exactly those `p` with `path <= p < subtree_end(path)`, so an index on paths can find a
/// subtree by range. (`/S1/` → `/S10`: `/S1/C1/` is in, `/S10/` is not; `/` → `0`.)
pub fn subtree_end(path: &str) -> String {
    match path.strip_suffix('/') {
        // `0` is the byte after `/`.
        Some(stem) => format!("{stem}0"),
        // Not a path as the server writes them; an empty range.
        None => path.to_owned(),
    }
}

impl From<String> for CellPath {
    /// A path the server made (stored or from its own grid); peers' go through [`CellPath::parse`].
    fn from(text: String) -> Self {
        CellPath(text)
    }
}

impl From<&str> for CellPath {
    fn from(text: &str) -> Self {
        CellPath(text.to_owned())
    }
}

impl std::fmt::Display for CellPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A grid cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellRecord {
    /// Code, e.g. `S1-C2`.
    pub code: String,
    /// Parent code, empty at the top.
    pub parent: String,
    /// Level 1..4.
    pub level: u32,
    /// Display name.
    pub name: String,
    /// Retired cells keep their history but take no new records.
    pub retired: bool,
    /// Boundary as GeoJSON geometry text (WGS-84), if known.
    pub boundary: Option<String>,
}

/// A checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRecord {
    /// Code, e.g. `S1-C2-K3-B4-P1`.
    pub code: String,
    /// Its cell.
    pub grid_cell: String,
    /// Display name.
    pub name: String,
    /// NFC/QR tag UID.
    pub tag_uid: String,
    /// Position, if known.
    pub position: Option<(f64, f64)>,
    /// On-site radius, metres.
    pub radius_m: f64,
}

impl CellRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        wire::GridCell {
            code: self.code.clone(),
            parent: self.parent.clone(),
            level: self.level,
            name: self.name.clone(),
            retired: self.retired,
            boundary: self.boundary.clone().unwrap_or_default(),
        }
        .encode_to_vec()
    }

    /// From protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<CellRecord, Invalid> {
        let w = wire::GridCell::decode(bytes)
            .map_err(|e| Invalid::new("cell", "corrupt", e.to_string()))?;
        Ok(CellRecord {
            code: w.code,
            parent: w.parent,
            level: w.level,
            name: w.name,
            retired: w.retired,
            boundary: Some(w.boundary).filter(|b| !b.is_empty()),
        })
    }
}

impl CheckpointRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (latitude, longitude) = self.position.unwrap_or((f64::NAN, f64::NAN));
        wire::Checkpoint {
            code: self.code.clone(),
            grid_cell: self.grid_cell.clone(),
            name: self.name.clone(),
            tag_uid: self.tag_uid.clone(),
            latitude,
            longitude,
            radius_m: self.radius_m,
            template_id: String::new(),
        }
        .encode_to_vec()
    }

    /// From protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<CheckpointRecord, Invalid> {
        let w = wire::Checkpoint::decode(bytes)
            .map_err(|e| Invalid::new("checkpoint", "corrupt", e.to_string()))?;
        let position = (w.latitude.is_finite() && w.longitude.is_finite())
            .then_some((w.latitude, w.longitude));
        Ok(CheckpointRecord {
            code: w.code,
            grid_cell: w.grid_cell,
            name: w.name,
            tag_uid: w.tag_uid,
            position,
            radius_m: w.radius_m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_its_codes_parent_top_and_ancestors() {
        let p = CellPath::root()
            .child("S1")
            .child("S1-C1")
            .child("S1-C1-K1");
        assert_eq!(p.as_str(), "/S1/S1-C1/S1-C1-K1/");
        assert_eq!(p.codes().collect::<Vec<_>>(), ["S1", "S1-C1", "S1-C1-K1"]);
        assert_eq!((p.code(), p.parent_code()), ("S1-C1-K1", "S1-C1"));
        assert_eq!(p.top().as_str(), "/S1/");
        assert_eq!(
            p.ancestors()
                .iter()
                .map(|(c, a)| (*c, a.as_str()))
                .collect::<Vec<_>>(),
            [("S1-C1", "/S1/S1-C1/"), ("S1", "/S1/")]
        );
        assert!(p.passes("S1-C1") && !p.passes("S1-C"));
        assert!(CellPath::from("/S1/").covers(p.as_str()));
        assert!(!CellPath::from("/S1/S1-C2/").covers(p.as_str()));
        assert!(!CellPath::from("/S1/S1-C1/").covers("/S1/S1-C10/"));
        let root = CellPath::root();
        assert_eq!((root.code(), root.parent_code()), ("", ""));
        assert!(root.ancestors().is_empty() && root.covers("/S2/"));
    }

    #[test]
    fn a_peers_path_is_checked() {
        assert_eq!(
            CellPath::parse("/S1/S1-C1/").map(|p| p.code().to_owned()),
            Ok("S1-C1".into())
        );
        assert!(CellPath::parse("/").is_ok());
        let subtree = |top: &str, path: &str| top <= path && path < subtree_end(top).as_str();
        for (top, path, within) in [
            ("/S1/", "/S1/", true),
            ("/S1/", "/S1/C1/K1/", true),
            ("/S1/", "/S10/", false),
            ("/S1/", "/S1", false),
            ("/S1/", "/S0/", false),
            ("/S1/", "/S1-/", false),
            ("/", "/S1/", true),
            ("/S1/", "/S1/街道/", true),
        ] {
            assert_eq!(subtree(top, path), within, "{top} {path}");
            assert_eq!(covers(top, path), within, "{top} {path}");
        }
        for bad in ["S1/", "/S1", "/S1//S1-C1/", "/S1/\0/", ""] {
            let e = CellPath::parse(bad).expect_err(bad);
            assert_eq!((e.field.as_str(), e.reason), ("path", "invalid"), "{bad}");
        }
    }
}
