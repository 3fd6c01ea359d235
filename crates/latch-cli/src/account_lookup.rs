//! Commands name an account by id or by name; the API wants the id.

use crate::client::{CliError, Client};

/// Accepts an account id or a name.
pub fn account_id(client: &Client, account: &str) -> Result<String, CliError> {
    if account.len() == 36 && account.chars().filter(|c| *c == '-').count() == 4 {
        return Ok(account.to_owned());
    }
    let list = client.get("/v1/accounts")?;
    list["accounts"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["name"] == account))
        .and_then(|a| a["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| CliError::Api {
            status: 404,
            title: "Not Found".into(),
            detail: format!("no account named {account}"),
            request_id: None,
        })
}
