//! Photos issuers upload for their cards: JPEG, PNG or WebP (told by the file's own bytes,
//! not by its name or the browser's word), size-limited, stored under a name made from the
//! content's hash so a URL never serves stale bytes and can be cached for good.

use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhotoError {
    #[error("the photo is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the photo is empty")]
    Empty,
    #[error("the photo is not a JPEG, PNG or WebP image")]
    NotAnImage,
    #[error("the photo could not be stored: {0}")]
    Io(String),
}

/// The image type by its magic bytes: (extension, content type).
pub fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(("jpg", "image/jpeg"))
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(("png", "image/png"))
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(("webp", "image/webp"))
    } else {
        None
    }
}

/// The content type of a stored photo's file name, if it is one of ours.
pub fn content_type(name: &str) -> Option<&'static str> {
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.len() != 32 || !stem.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match ext {
        "jpg" => Some("image/jpeg"),
        "png" => Some("image/png"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

/// The directory photos are kept in.
pub fn dir(data_dir: &str) -> PathBuf {
    Path::new(data_dir).join("photos")
}

/// Check and store `bytes`; the stored file's name.
pub fn store(data_dir: &str, bytes: &[u8], max: usize) -> Result<String, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    if bytes.len() > max {
        return Err(PhotoError::TooLarge(max));
    }
    let (ext, _) = sniff(bytes).ok_or(PhotoError::NotAnImage)?;
    let hash = hex::encode(&sha2::Sha256::digest(bytes)[..16]);
    let name = format!("{hash}.{ext}");
    let dir = dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| PhotoError::Io(e.to_string()))?;
    let path = dir.join(&name);
    if !path.exists() {
        // Written aside and renamed, so a reader never sees half a file.
        use rand::Rng;
        let tmp = dir.join(format!(".{name}.{:x}.part", rand::rng().next_u64()));
        std::fs::write(&tmp, bytes).map_err(|e| PhotoError::Io(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| PhotoError::Io(e.to_string()))?;
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_is_told_by_its_bytes_and_stored_under_its_hash() {
        let dir = std::env::temp_dir().join(format!("freecall-photo-{}", std::process::id()));
        let data = dir.display().to_string();
        let png = std::fs::read(format!(
            "{}/tests/fixtures/photo.png",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let name = store(&data, &png, 1 << 20).unwrap();
        assert!(name.ends_with(".png") && name.len() == 36, "{name}");
        assert_eq!(content_type(&name), Some("image/png"));
        assert_eq!(std::fs::read(super::dir(&data).join(&name)).unwrap(), png);
        assert_eq!(
            store(&data, &png, 1 << 20).unwrap(),
            name,
            "the same photo, the same name"
        );
        assert_eq!(
            store(&data, b"<svg onload=alert(1)>", 1 << 20),
            Err(PhotoError::NotAnImage)
        );
        assert_eq!(store(&data, &png, 100), Err(PhotoError::TooLarge(100)));
        assert_eq!(store(&data, b"", 100), Err(PhotoError::Empty));
        assert_eq!(content_type("../../etc/passwd"), None);
        assert_eq!(content_type("x.png"), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
