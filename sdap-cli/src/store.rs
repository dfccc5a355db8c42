//! Backup stores: a folder on the local file system, where object keys
//! are relative paths under a root (a copy of the bucket, or where `export`
//! writes), or an S3-compatible bucket (`s3://BUCKET`, [`S3Store`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use sdap::Error;
use sdap::backup::{self, ObjectSource};

use crate::s3_store::{self, S3Store};

/// Where `--from` reads and `--to` writes.
pub enum Store {
    Dir(DirStore),
    S3(S3Store),
}

impl Store {
    /// `s3://BUCKET` (settings from the environment), or a folder.
    pub fn open(location: &str) -> Result<Self, String> {
        match s3_store::bucket_of(location) {
            Some(bucket) => Ok(Self::S3(S3Store::from_env(bucket?)?)),
            None => Ok(Self::Dir(DirStore::new(Path::new(location)))),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Dir(d) => d.root.display().to_string(),
            Self::S3(s) => s.describe(),
        }
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        match self {
            Self::Dir(d) => d.put(key, bytes),
            Self::S3(s) => s.put(key, bytes),
        }
    }

    /// Ids of complete backups (those with a manifest), oldest first.
    pub fn backup_ids(&self) -> Result<Vec<String>, Error> {
        match self {
            Self::Dir(d) => d.backup_ids(),
            Self::S3(s) => s.backup_ids(),
        }
    }

    /// Total bytes of a backup's objects.
    pub fn backup_size(&self, id: &str) -> u64 {
        match self {
            Self::Dir(d) => d.backup_size(id),
            Self::S3(s) => s.backup_size(id),
        }
    }
}

impl ObjectSource for Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Self::Dir(d) => d.get(key),
            Self::S3(s) => s.get(key),
        }
    }
}

pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, Error> {
        // Keys come from validated ids and names; refuse anything else anyway.
        if key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(Error::Store(format!("refusing object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Store(format!("{}: {e}", dir.display())))?;
        }
        // Write aside and rename, so a reader never sees half an object.
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).map_err(|e| Error::Store(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))
    }

    /// Ids of complete backups (those with a manifest), oldest first.
    pub fn backup_ids(&self) -> Result<Vec<String>, Error> {
        let dir = self.root.join(backup::ROOT);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::Store(format!("{}: {e}", dir.display()))),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| backup::valid_backup_id(id))
            .filter(|id| dir.join(id).join(backup::MANIFEST).is_file())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Total bytes of a backup's objects.
    pub fn backup_size(&self, id: &str) -> u64 {
        std::fs::read_dir(self.root.join(backup::ROOT).join(id))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl ObjectSource for DirStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Store(format!("{}: {e}", path.display()))),
        }
    }
}
