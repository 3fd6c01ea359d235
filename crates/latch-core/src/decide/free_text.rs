//! Free text a command carries (descriptions, reasons, token names): how
//! long it may be, and whether it may be blank.

use crate::domain_error::DomainError;

/// Longest free text (descriptions, reasons, token names) accepted.
pub const MAX_TEXT: usize = 1024;

pub(super) fn check_text(
    field: &'static str,
    text: &str,
    required: bool,
) -> Result<(), DomainError> {
    if required && text.trim().is_empty() {
        return Err(DomainError::Empty { field });
    }
    if text.chars().count() > MAX_TEXT {
        return Err(DomainError::TooLong {
            field,
            max: MAX_TEXT,
        });
    }
    Ok(())
}
