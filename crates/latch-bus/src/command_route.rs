//! Commands over NATS: each `latch.cmd.<command>` subject is one route of
//! latchd's HTTP API. latchd's command service turns a request on the
//! subject into that HTTP request and runs it through the very router HTTP
//! clients reach; the CLI's `--transport nats` turns an HTTP request back
//! into the subject. One table, so the two can never disagree.
//!
//! The request body is the HTTP body plus, for routes addressed by a path
//! parameter, that parameter as a field (`account_id`, `token_id` or
//! `role`). For reads, the remaining fields are the query parameters.

/// The service's name in NATS service discovery (`$SRV.PING.latch`).
pub const SERVICE_NAME: &str = "latch";
/// Every command subject starts with this.
pub const COMMAND_PREFIX: &str = "latch.cmd";
/// The queue group latchd's command endpoints share, so several latchd
/// processes split the load.
pub const QUEUE_GROUP: &str = "latch";
/// The reply header that carries the HTTP status.
pub const STATUS_HEADER: &str = "Latch-Status";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRoute {
    /// `token.issue`: the subject is `latch.cmd.token.issue`.
    pub command: &'static str,
    pub method: &'static str,
    /// The HTTP path, `{…}` where the parameter goes.
    pub path: &'static str,
    /// The body field that fills the path's parameter.
    pub param: Option<&'static str>,
}

const fn route(
    command: &'static str,
    method: &'static str,
    path: &'static str,
    param: Option<&'static str>,
) -> CommandRoute {
    CommandRoute {
        command,
        method,
        path,
        param,
    }
}

const ACCOUNT: Option<&str> = Some("account_id");
const TOKEN: Option<&str> = Some("token_id");
const ROLE: Option<&str> = Some("role");

/// Every command (and the reads the CLI needs), in the order `latch.cmd.*`
/// documents them.
pub const COMMAND_ROUTES: &[CommandRoute] = &[
    route("account.create", "POST", "/v1/accounts", None),
    route("account.update", "PATCH", "/v1/accounts/{id}", ACCOUNT),
    route(
        "account.disable",
        "POST",
        "/v1/accounts/{id}/disable",
        ACCOUNT,
    ),
    route(
        "account.enable",
        "POST",
        "/v1/accounts/{id}/enable",
        ACCOUNT,
    ),
    route("account.delete", "DELETE", "/v1/accounts/{id}", ACCOUNT),
    route("account.list", "GET", "/v1/accounts", None),
    route("account.show", "GET", "/v1/accounts/{id}", ACCOUNT),
    route("token.issue", "POST", "/v1/accounts/{id}/tokens", ACCOUNT),
    route("token.list", "GET", "/v1/accounts/{id}/tokens", ACCOUNT),
    route("token.list_all", "GET", "/v1/tokens", None),
    route("token.show", "GET", "/v1/tokens/{id}", TOKEN),
    route("token.revoke", "POST", "/v1/tokens/{id}/revoke", TOKEN),
    route("token.rotate_self", "POST", "/v1/tokens/self/rotate", None),
    route("token.rotate", "POST", "/v1/tokens/{id}/rotate", TOKEN),
    route("token.introspect", "POST", "/v1/introspect", None),
    route("role.list", "GET", "/v1/roles", None),
    route("role.define", "PUT", "/v1/roles/{name}", ROLE),
    route("role.delete", "DELETE", "/v1/roles/{name}", ROLE),
    route("policy.show", "GET", "/v1/policy", None),
    route("policy.set", "PUT", "/v1/policy", None),
];

/// The commands whose reply carries a new token's secret.
const SECRET_REPLIES: &[&str] = &["token.issue", "token.rotate", "token.rotate_self"];

impl CommandRoute {
    /// `latch.cmd.<command>`.
    pub fn subject(&self) -> String {
        format!("{COMMAND_PREFIX}.{}", self.command)
    }

    /// The route a subject names, if any.
    pub fn for_subject(subject: &str) -> Option<&'static CommandRoute> {
        let command = subject.strip_prefix(COMMAND_PREFIX)?.strip_prefix('.')?;
        COMMAND_ROUTES.iter().find(|r| r.command == command)
    }

    /// Whether a successful reply carries a token secret: such a command is
    /// served only to a requester that sent `Latch-Reply-Key`, so the
    /// secret travels sealed (`sealed_reply`).
    pub fn reply_carries_secret(&self) -> bool {
        SECRET_REPLIES.contains(&self.command)
    }

    /// The HTTP path with the parameter in place.
    pub fn path_with(&self, param: Option<&str>) -> String {
        match (self.path.find('{'), param) {
            (Some(open), Some(value)) => {
                let close = self.path[open..]
                    .find('}')
                    .map_or(self.path.len(), |c| open + c + 1);
                format!("{}{}{}", &self.path[..open], value, &self.path[close..])
            }
            _ => self.path.to_owned(),
        }
    }

    /// The route an HTTP request (method and path, no query) is, with the
    /// value of its parameter.
    pub fn for_request(
        method: &str,
        path: &str,
    ) -> Option<(&'static CommandRoute, Option<String>)> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        COMMAND_ROUTES.iter().find_map(|route| {
            if !route.method.eq_ignore_ascii_case(method) {
                return None;
            }
            let template: Vec<&str> = route.path.split('/').collect();
            if template.len() != segments.len() {
                return None;
            }
            let mut param = None;
            for (want, got) in template.iter().zip(&segments) {
                if want.starts_with('{') {
                    if got.is_empty() {
                        return None;
                    }
                    param = Some((*got).to_owned());
                } else if want != got {
                    return None;
                }
            }
            Some((route, param))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_requests_map_both_ways() {
        for route in COMMAND_ROUTES {
            assert_eq!(CommandRoute::for_subject(&route.subject()), Some(route));
            let path = route.path_with(route.param.map(|_| "x-1"));
            let (found, param) = CommandRoute::for_request(route.method, &path).unwrap();
            assert_eq!(found, route, "{path}");
            assert_eq!(param.is_some(), route.param.is_some());
        }
        assert_eq!(
            CommandRoute::for_request("POST", "/v1/tokens/self/rotate")
                .unwrap()
                .0
                .command,
            "token.rotate_self",
            "the literal route wins over the parameter"
        );
        assert!(CommandRoute::for_subject("latch.cmd.token.steal").is_none());
        let secret: Vec<&str> = COMMAND_ROUTES
            .iter()
            .filter(|r| r.reply_carries_secret())
            .map(|r| r.command)
            .collect();
        assert_eq!(secret, ["token.issue", "token.rotate_self", "token.rotate"]);
        assert!(CommandRoute::for_subject("latch.cmdx.token.issue").is_none());
    }
}
