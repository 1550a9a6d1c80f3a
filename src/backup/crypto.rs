//! Backup encryption: AES-256-CBC decryption of Manifest.db and of blobs (issue 4).
