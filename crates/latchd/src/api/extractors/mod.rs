//! What a handler takes from a request.

pub mod caller;
pub mod command_headers;
pub mod json_body;
pub mod json_media_type;
pub mod submit;
