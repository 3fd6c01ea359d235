//! `latch`: the command line for Latch. Talks HTTP to latchd.
#![forbid(unsafe_code)]

mod audit;
mod audit_events;
mod client;
mod exit_code;
mod nats_transport;
mod output;
mod progress;
mod record_printer;

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::client::{CliError, Client, Headers};
use crate::output::{Column, Output, print};

/// mimalloc instead of the system allocator: replay, JSON and RocksDB
/// allocate per event, and glibc's malloc was a sixth of the time (ADR 0017).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "latch", version, about = "Manage Latch service accounts, tokens, roles and policy", after_help = exit_code::HELP)]
struct Cli {
    /// latchd's URL.
    #[arg(
        long,
        env = "LATCH_URL",
        default_value = "http://127.0.0.1:7420",
        global = true
    )]
    url: String,
    /// The token to act with. Prefer LATCH_TOKEN or --token-file: flags show up in process lists.
    #[arg(long, env = "LATCH_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Read the token from this file (e.g. <data-dir>/admin.token).
    #[arg(long, env = "LATCH_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// How to print results.
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: Output,
    /// How to reach latchd: HTTP at --url, or NATS at --nats-url (latchd's
    /// command service on latch.cmd.*).
    #[arg(long, value_enum, default_value = "http", global = true)]
    transport: Transport,
    /// PEM file of the CA (or self-signed certificate) to trust for an
    /// https:// --url, beside the usual public roots.
    #[arg(long, env = "LATCH_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// NATS (for --transport nats and `latch watch`).
    #[command(flatten)]
    nats: latch_bus::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Service accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Roles: named permission sets.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Token policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Read the event log (the audit trail of every change).
    Events(EventsArgs),
    /// Follow events live over NATS as latchd publishes them.
    Watch(WatchArgs),
    /// Investigate: the log filtered, a token's story, the state or who could
    /// do what at a moment; verify and export the hash-chained log. Online, or
    /// offline with --data-dir.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    Http,
    Nats,
}

#[derive(Args)]
struct WatchArgs {
    /// Only events about this account (id).
    #[arg(long)]
    account: Option<String>,
    /// Only events of this type, e.g. token.revoked.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Which of latchd's keys to trust: with one, events that latchd did
    /// not sign are not shown (each refusal is said on stderr).
    #[command(flatten)]
    trust: latch_bus::FeedTrustArgs,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account: `latch account create ci-deploy --role cert-operator`.
    Create {
        /// The account's name: lowercase letters, digits and dashes, e.g. ci-deploy.
        name: String,
        /// The role whose permissions its tokens may carry (`latch role list`).
        #[arg(long)]
        role: String,
        /// What or who acts through it, e.g. "GitLab deploy pipeline".
        #[arg(long)]
        description: Option<String>,
        /// Makes a retry safe: the same key and request create one account.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List accounts.
    List {
        /// Only accounts in this status: active, disabled or deleted.
        #[arg(long)]
        status: Option<String>,
        /// Only accounts with this role.
        #[arg(long)]
        role: Option<String>,
    },
    /// Show one account (by id or name).
    Show {
        /// Account id or name.
        account: String,
    },
    /// Change an account's role or description.
    Update {
        /// Account id or name.
        account: String,
        /// The new role: every token of the account narrows or widens with it at once.
        #[arg(long)]
        role: Option<String>,
        /// The new description.
        #[arg(long)]
        description: Option<String>,
        /// Fail with exit code 6 unless the account is still at this version.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Suspend every token of the account at once: the first move when a leak is suspected.
    Disable {
        /// Account id or name.
        account: String,
        /// Why, for the audit trail, e.g. "token leaked in job 4411".
        #[arg(long)]
        reason: String,
    },
    /// Resume a disabled account.
    Enable {
        /// Account id or name.
        account: String,
    },
    /// Delete an account for good; revokes all its tokens.
    Delete {
        /// Account id or name.
        account: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token; `--output raw` prints only the token.
    Issue {
        /// Account id or name.
        account: String,
        /// What the token is for, e.g. deploy (shown in listings).
        #[arg(long)]
        name: String,
        /// A permission the token carries (repeatable); default: the account's role.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, e.g. 30d; default from policy.
        #[arg(long)]
        ttl: Option<String>,
        /// Only accept the token from this CIDR (repeatable).
        #[arg(long = "allow-cidr")]
        allowed_cidrs: Vec<String>,
        /// Makes a retry safe: the same key and request issue one token, and
        /// a retry gets the same secret back for a short while.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List an account's tokens.
    List {
        /// Account id or name.
        account: String,
        /// Only live tokens not used within this span (e.g. 30d): stale
        /// tokens to clean up.
        #[arg(long)]
        unused_since: Option<String>,
    },
    /// Show a token's metadata (`self` for the calling token).
    Show {
        /// Token id, or `self`.
        id: String,
    },
    /// Revoke a token, for good, at latchd and every verifier.
    Revoke {
        /// Token id.
        id: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        /// Also revoke every token of its rotation family (the tokens it was
        /// rotated from and to): use this for a leaked token, which may have
        /// rotated itself.
        #[arg(long)]
        family: bool,
    },
    /// Rotate a token (or the calling one with --self); prints the new token.
    Rotate {
        /// Token id (or --self).
        #[arg(required_unless_present = "self_")]
        id: Option<String>,
        /// Rotate the token this command acts with (a pipeline renewing itself).
        #[arg(long = "self", id = "self_")]
        self_: bool,
        /// How long the old token keeps working, e.g. 1h.
        #[arg(long)]
        grace: Option<String>,
        /// Makes a retry safe: the same key rotates once.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Ask latchd whether a token is active (reads it from stdin when omitted or `-`).
    Introspect {
        /// The token secret; prefer stdin: arguments show up in process lists.
        secret: Option<String>,
    },
}

#[derive(Subcommand)]
// Parsed once per run: the size of the policy flags does not matter.
#[allow(clippy::large_enum_variant)]
enum RoleCommand {
    /// List roles.
    List,
    /// Define or redefine a role (`--permission certificates:issue ...`),
    /// and/or change its policy override (`--max-ttl 30d ...`; the flags
    /// given replace those fields, the others stay).
    Set {
        /// The role's name, e.g. cert-operator.
        name: String,
        /// A permission the role grants, `resource:action` with `*`
        /// wildcards (repeatable); replaces the role's permissions.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// What the role is for.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        policy: PolicyFields,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Show the global policy, role overrides and what is in force per role.
    Show,
    /// Replace the global policy (or a role's override with --role).
    Set(PolicySet),
}

#[derive(Args)]
struct PolicySet {
    /// Set this role's override instead of the global policy.
    #[arg(long)]
    role: Option<String>,
    #[command(flatten)]
    fields: PolicyFields,
}

#[derive(Args)]
struct PolicyFields {
    /// The longest lifetime a token may be issued with, e.g. 90d.
    #[arg(long)]
    max_ttl: Option<String>,
    /// The lifetime of a token issued without --ttl, e.g. 30d.
    #[arg(long)]
    default_ttl: Option<String>,
    /// Tokens older than this are noted `token.rotation_due`, e.g. 30d.
    #[arg(long)]
    rotation_period: Option<String>,
    /// How long before expiry a token is noted `token.expiring`, e.g. 7d.
    #[arg(long)]
    expiry_warning: Option<String>,
    /// How long the old token keeps working after a rotation by default, e.g. 1h.
    #[arg(long)]
    rotation_grace: Option<String>,
    /// Live tokens one account may hold.
    #[arg(long)]
    max_tokens_per_account: Option<u32>,
    /// Whether every token must expire (true/false).
    #[arg(long)]
    require_expiry: Option<bool>,
}

impl PolicyFields {
    /// The fields given, as the policy API names them.
    fn fields(self) -> serde_json::Map<String, Value> {
        [
            ("max_ttl", self.max_ttl.map(Value::from)),
            ("default_ttl", self.default_ttl.map(Value::from)),
            ("rotation_period", self.rotation_period.map(Value::from)),
            ("expiry_warning", self.expiry_warning.map(Value::from)),
            ("rotation_grace", self.rotation_grace.map(Value::from)),
            (
                "max_tokens_per_account",
                self.max_tokens_per_account.map(Value::from),
            ),
            ("require_expiry", self.require_expiry.map(Value::from)),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
        .collect()
    }
}

#[derive(Args)]
struct EventsArgs {
    /// Events after this position.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Only events about this account (id or name).
    #[arg(long)]
    account: Option<String>,
    /// Only events of this type, e.g. token.revoked.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Keep printing new events as they are appended.
    #[arg(long)]
    follow: bool,
}

const ACCOUNT_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("ROLE", "role"),
    ("STATUS", "status"),
    ("VERSION", "version"),
    ("DESCRIPTION", "description"),
];
const TOKEN_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("EXPIRES", "expires_at"),
    ("LAST USED", "last_used_at"),
    ("SCOPES", "scopes"),
    ("EFFECTIVE", "effective_permissions"),
];
const ISSUED_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("TOKEN", "token"),
    ("EXPIRES", "expires_at"),
    ("SCOPES", "scopes"),
];
const ROLE_COLUMNS: &[Column] = &[
    ("NAME", "name"),
    ("BUILTIN", "builtin"),
    ("PERMISSIONS", "permissions"),
    ("DESCRIPTION", "description"),
];
const EVENT_COLUMNS: &[Column] = &[
    ("POSITION", "position"),
    ("TIME", "at"),
    ("TYPE", "type"),
    ("ACCOUNT", "data.account_id"),
    ("TOKEN", "data.token_id"),
    ("ACTOR", "actor.account_id"),
];

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            std::process::exit(if error.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::OK
            });
        }
    };
    // The documentation tests check that every documented command parses.
    if std::env::var_os("LATCH_CHECK_ARGS").is_some() {
        return;
    }
    if let Err(error) = run(cli) {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let token = match (&cli.token, &cli.token_file) {
        (Some(token), _) => Some(token.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    CliError::Usage(format!("reading token file {}: {e}", path.display()))
                })?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let client = Client::new(&cli.url, token, cli.ca_file.as_deref())?;
    let client = match cli.transport {
        Transport::Http => client,
        Transport::Nats => client.over_nats(cli.nats.connection())?,
    };
    let out = cli.output;
    match cli.command {
        Command::Account(command) => account(&client, out, command),
        Command::Token(command) => token_command(&client, out, command),
        Command::Role(command) => role(&client, out, command),
        Command::Policy(command) => policy(&client, out, command),
        Command::Events(args) => events(&client, out, args),
        Command::Watch(args) => watch(out, &cli.nats.connection(), args),
        Command::Audit(command) => audit::audit(&client, out, command),
    }
}

/// Accepts an account id or a name.
fn account_id(client: &Client, account: &str) -> Result<String, CliError> {
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

fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    Value::Object(map)
}

fn post(
    client: &Client,
    path: &str,
    body: Value,
    idempotency_key: Option<String>,
) -> Result<Value, CliError> {
    client.send(
        "POST",
        path,
        Some(&body),
        &Headers {
            idempotency_key,
            if_match: None,
        },
    )
}

fn account(client: &Client, out: Output, command: AccountCommand) -> Result<(), CliError> {
    let result = match command {
        AccountCommand::Create {
            name,
            role,
            description,
            idempotency_key,
        } => {
            let body = object(vec![
                ("name", Some(json!(name))),
                ("role", Some(json!(role))),
                ("description", description.map(Value::from)),
            ]);
            post(client, "/v1/accounts", body, idempotency_key)?
        }
        AccountCommand::List { status, role } => {
            let mut query = Vec::new();
            if let Some(status) = status {
                query.push(format!("status={status}"));
            }
            if let Some(role) = role {
                query.push(format!("role={role}"));
            }
            let path = if query.is_empty() {
                "/v1/accounts".to_owned()
            } else {
                format!("/v1/accounts?{}", query.join("&"))
            };
            client.get(&path)?["accounts"].take()
        }
        AccountCommand::Show { account } => {
            client.get(&format!("/v1/accounts/{}", account_id(client, &account)?))?
        }
        AccountCommand::Update {
            account,
            role,
            description,
            if_match,
        } => {
            let id = account_id(client, &account)?;
            let body = object(vec![
                ("role", role.map(Value::from)),
                ("description", description.map(Value::from)),
            ]);
            client.send(
                "PATCH",
                &format!("/v1/accounts/{id}"),
                Some(&body),
                &Headers {
                    idempotency_key: None,
                    if_match,
                },
            )?
        }
        AccountCommand::Disable { account, reason } => {
            let id = account_id(client, &account)?;
            post(
                client,
                &format!("/v1/accounts/{id}/disable"),
                json!({ "reason": reason }),
                None,
            )?
        }
        AccountCommand::Enable { account } => {
            let id = account_id(client, &account)?;
            post(
                client,
                &format!("/v1/accounts/{id}/enable"),
                json!({}),
                None,
            )?
        }
        AccountCommand::Delete { account } => {
            let id = account_id(client, &account)?;
            client.send(
                "DELETE",
                &format!("/v1/accounts/{id}"),
                None,
                &Headers::default(),
            )?
        }
    };
    print(out, &result, ACCOUNT_COLUMNS);
    Ok(())
}

fn print_issued(out: Output, issued: &Value) {
    if out == Output::Raw {
        println!("{}", issued["token"].as_str().unwrap_or_default());
    } else {
        print(out, issued, ISSUED_COLUMNS);
        if out == Output::Table {
            eprintln!("Store the token now: it is not shown again.");
        }
    }
}

fn token_command(client: &Client, out: Output, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Issue {
            account,
            name,
            scopes,
            ttl,
            allowed_cidrs,
            idempotency_key,
        } => {
            let id = account_id(client, &account)?;
            let body = object(vec![
                ("name", Some(json!(name))),
                ("scopes", (!scopes.is_empty()).then(|| json!(scopes))),
                ("ttl", ttl.map(Value::from)),
                (
                    "allowed_cidrs",
                    (!allowed_cidrs.is_empty()).then(|| json!(allowed_cidrs)),
                ),
            ]);
            print_issued(
                out,
                &post(
                    client,
                    &format!("/v1/accounts/{id}/tokens"),
                    body,
                    idempotency_key,
                )?,
            );
        }
        TokenCommand::List {
            account,
            unused_since,
        } => {
            let id = account_id(client, &account)?;
            let query = unused_since
                .map(|span| format!("?unused_since={span}"))
                .unwrap_or_default();
            print(
                out,
                &client.get(&format!("/v1/accounts/{id}/tokens{query}"))?["tokens"],
                TOKEN_COLUMNS,
            );
        }
        TokenCommand::Show { id } => print(
            out,
            &client.get(&format!("/v1/tokens/{id}"))?,
            TOKEN_COLUMNS,
        ),
        TokenCommand::Revoke { id, reason, family } => {
            let body = object(vec![
                ("reason", reason.map(Value::from)),
                ("family", family.then_some(Value::Bool(true))),
            ]);
            print(
                out,
                &post(client, &format!("/v1/tokens/{id}/revoke"), body, None)?,
                TOKEN_COLUMNS,
            );
        }
        TokenCommand::Rotate {
            id,
            self_,
            grace,
            idempotency_key,
        } => {
            let path = match (self_, id) {
                (true, _) => "/v1/tokens/self/rotate".to_owned(),
                (false, Some(id)) => format!("/v1/tokens/{id}/rotate"),
                (false, None) => {
                    return Err(CliError::Usage("name a token id, or pass --self".into()));
                }
            };
            let body = object(vec![("grace", grace.map(Value::from))]);
            print_issued(out, &post(client, &path, body, idempotency_key)?);
        }
        TokenCommand::Introspect { secret } => {
            let token = match secret.as_deref() {
                Some(t) if t != "-" => t.to_owned(),
                _ => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .map_err(|e| CliError::Other(e.to_string()))?;
                    text.trim().to_owned()
                }
            };
            let result = post(client, "/v1/introspect", json!({ "token": token }), None)?;
            print(
                out,
                &result,
                &[
                    ("ACTIVE", "active"),
                    ("ACCOUNT", "account_id"),
                    ("TOKEN", "token_id"),
                    ("SCOPE", "scope"),
                    ("EXP", "exp"),
                ],
            );
        }
    }
    Ok(())
}

fn role(client: &Client, out: Output, command: RoleCommand) -> Result<(), CliError> {
    let result = match command {
        RoleCommand::List => client.get("/v1/roles")?["roles"].take(),
        RoleCommand::Set {
            name,
            permissions,
            description,
            policy,
        } => {
            let policy = policy.fields();
            if permissions.is_empty() && policy.is_empty() {
                return Err(CliError::Usage(
                    "give --permission (to define the role) and/or policy flags such as --max-ttl"
                        .into(),
                ));
            }
            let mut result = json!({ "name": name });
            if !permissions.is_empty() {
                let body = object(vec![
                    ("permissions", Some(json!(permissions))),
                    ("description", description.map(Value::from)),
                ]);
                result = client.send(
                    "PUT",
                    &format!("/v1/roles/{name}"),
                    Some(&body),
                    &Headers::default(),
                )?;
            }
            if !policy.is_empty() {
                // Patch the role's override: keep what the flags do not name.
                let mut layer = client.get("/v1/policy")?["roles"][&name]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                layer.extend(policy);
                let body = Value::Object(layer.into_iter().filter(|(_, v)| !v.is_null()).collect());
                client.send(
                    "PUT",
                    &format!("/v1/policy?role={name}"),
                    Some(&body),
                    &Headers::default(),
                )?;
                if permissions.is_empty() {
                    result = client.get("/v1/roles")?["roles"]
                        .as_array()
                        .and_then(|roles| {
                            roles.iter().find(|r| r["name"] == name.as_str()).cloned()
                        })
                        .unwrap_or(result);
                }
            }
            result
        }
    };
    print(out, &result, ROLE_COLUMNS);
    Ok(())
}

fn policy(client: &Client, out: Output, command: PolicyCommand) -> Result<(), CliError> {
    let result = match command {
        PolicyCommand::Show => client.get("/v1/policy")?,
        PolicyCommand::Set(set) => {
            let body = Value::Object(set.fields.fields());
            let path = match &set.role {
                Some(role) => format!("/v1/policy?role={role}"),
                None => "/v1/policy".to_owned(),
            };
            client.send("PUT", &path, Some(&body), &Headers::default())?
        }
    };
    if out == Output::Table {
        let rows: Vec<Value> = result["effective"]
            .as_object()
            .map(|roles| {
                roles
                    .iter()
                    .map(|(name, p)| {
                        let mut p = p.clone();
                        p["role"] = json!(name);
                        p
                    })
                    .collect()
            })
            .unwrap_or_default();
        let columns: &[Column] = &[
            ("ROLE", "role"),
            ("MAX_TTL", "max_ttl"),
            ("DEFAULT_TTL", "default_ttl"),
            ("ROTATION_PERIOD", "rotation_period"),
            ("EXPIRY_WARNING", "expiry_warning"),
            ("ROTATION_GRACE", "rotation_grace"),
            ("MAX_TOKENS", "max_tokens_per_account"),
            ("REQUIRE_EXPIRY", "require_expiry"),
        ];
        output::print_table(&rows.iter().collect::<Vec<_>>(), columns);
    } else {
        print(out, &result, &[]);
    }
    Ok(())
}

fn events(client: &Client, out: Output, args: EventsArgs) -> Result<(), CliError> {
    let account = args
        .account
        .as_deref()
        .map(|a| account_id(client, a))
        .transpose()?;
    let mut after = args.after;
    let mut header = true;
    loop {
        let mut path = format!("/v1/events?after={after}&limit={}", args.limit);
        if let Some(account) = &account {
            path.push_str(&format!("&account={account}"));
        }
        if let Some(event_type) = &args.event_type {
            path.push_str(&format!("&type={event_type}"));
        }
        let page = client.get(&path)?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        match out {
            Output::Table => {
                let rows: Vec<&Value> = events.iter().collect();
                if header || !rows.is_empty() {
                    if header {
                        output::print_table(&rows, EVENT_COLUMNS);
                    } else {
                        output::print_rows(&rows, EVENT_COLUMNS);
                    }
                }
            }
            _ => {
                for event in &events {
                    println!("{}", serde_json::to_string(event).unwrap_or_default());
                }
            }
        }
        header = false;
        after = page["next_after"].as_u64().unwrap_or(after);
        if !args.follow {
            return Ok(());
        }
        if events.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// Subscribes (core NATS) to the events matching the filters and prints
/// each as it arrives: one table row, or one JSON line.
fn watch(out: Output, nats: &latch_bus::NatsConnection, args: WatchArgs) -> Result<(), CliError> {
    // What may be shown: the URL without credentials.
    let nats_url = nats.redacted_url();
    let nats_url = nats_url.as_str();
    if let Some(event_type) = &args.event_type
        && event_type.split('.').count() != 2
    {
        return Err(CliError::Usage(format!(
            "--type {event_type:?}: event types look like token.revoked"
        )));
    }
    let subject = format!(
        "latch.events.{}.{}",
        args.event_type.as_deref().unwrap_or("*.*"),
        args.account.as_deref().unwrap_or("*")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(e.to_string()))?;
    runtime.block_on(async {
        use futures::StreamExt;
        let unreachable = |e: &dyn std::fmt::Display| CliError::Unreachable { url: nats_url.to_owned(), reason: e.to_string() };
        let client = nats.connect().await.map_err(|e| unreachable(&e))?;
        let mut messages = client.subscribe(subject.clone()).await.map_err(|e| unreachable(&e))?;
        client.flush().await.map_err(|e| unreachable(&e))?;
        eprintln!("watching {subject} on {nats_url}");
        if out == Output::Table {
            output::print_table(&[], EVENT_COLUMNS);
        }
        let trusted = args
            .trust
            .trusted_keys()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if trusted.is_empty() {
            eprintln!("latch watch: no --latch-public-key (LATCH_PUBLIC_KEY): showing what the broker delivers, unverified");
        }
        let mut chain = latch_bus::FeedChain::live(trusted);
        while let Some(message) = messages.next().await {
            let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str());
            let recorded = match chain.accept(header, &message.payload) {
                Ok(recorded) => recorded,
                Err(latch_bus::FeedRejection::Malformed(_)) => continue,
                Err(rejection) => {
                    eprintln!("latch watch: refused a message on {}: {rejection}", message.subject);
                    continue;
                }
            };
            let event = serde_json::json!({
                "position": recorded.position.get(),
                "at": recorded.envelope.at,
                "type": recorded.envelope.event.event_type(),
                "data": recorded.envelope.event.body(),
                "actor": match recorded.envelope.actor {
                    latch_core::Actor::System => serde_json::json!({ "kind": "system" }),
                    latch_core::Actor::Token { account_id, token_id } => serde_json::json!({ "kind": "token", "account_id": account_id.to_string(), "token_id": token_id.to_string() }),
                },
            });
            match out {
                Output::Table => output::print_rows(&[&event], EVENT_COLUMNS),
                _ => println!("{}", serde_json::to_string(&event).unwrap_or_default()),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_arguments_never_become_the_credential() {
        // `token show self` once replaced the global --token with "self".
        for args in [
            vec!["latch", "--token", "credential", "token", "show", "self"],
            vec![
                "latch",
                "--token",
                "credential",
                "token",
                "revoke",
                "some-id",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "token",
                "rotate",
                "some-id",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "token",
                "introspect",
                "latch_other",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "audit",
                "events",
                "--token-id",
                "some-id",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "audit",
                "token",
                "some-id",
            ],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap();
            assert_eq!(cli.token.as_deref(), Some("credential"), "{args:?}");
        }
    }
}
