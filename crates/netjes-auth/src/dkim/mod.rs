//! DKIM (RFC 6376, with RFC 8301 and RFC 8463).

pub mod keys;
pub(crate) mod precheck;
pub mod record;
pub mod sign;
pub mod signer;
pub mod verify;

pub use keys::{KeyAlgorithm, KeyError, PrivateKey};
pub use record::{key_records, parse_key_record, KeyRecord, KeyRecordError};
pub use sign::{sign_message, sign_with, sign_with_hashes, SignOptions, DEFAULT_SIGNED_HEADERS};
pub use signer::MessageSigner;
pub use verify::{verify_dkim, DkimResult, DkimSignatureReport};
