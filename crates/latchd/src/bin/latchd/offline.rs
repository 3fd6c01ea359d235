//! The subcommands that open the log themselves, with latchd stopped
//! (RocksDB's lock makes them fail while it runs): `recover-admin` and
//! `key rotate`; and `key show`, which reads beside a running latchd.

use std::sync::Arc;

use anyhow::Context;
use latch_store::EventStore;
use latchd::{CommandHandler, HandlerConfig, Keyring, LOG_DIR};

use crate::flags::{KeyCommand, RecoverAdminArgs, ServeArgs};

/// `latchd recover-admin`: opens the log itself (RocksDB's lock makes this
/// fail while latchd runs), appends the recovery through the command
/// handler, and says what it did.
pub async fn recover(args: &RecoverAdminArgs, settings: &ServeArgs) -> anyhow::Result<()> {
    let name = latch_core::AccountName::parse(&args.account)
        .map_err(|e| anyhow::anyhow!("--account {:?}: {e}", args.account))?;
    let store_dir = settings.data_dir.join(LOG_DIR);
    if !store_dir.exists() {
        anyhow::bail!(
            "no event log in {}: --data-dir must be latchd's data directory",
            settings.data_dir.display()
        );
    }
    let offline = Offline::open(settings, "recover-admin")?;
    let (handler, operator) = offline.handler()?;
    let recovered = latchd::recover_admin(&handler.handle(), &settings.data_dir, &name, &operator).await;
    handler.shutdown().await;
    let recovered = recovered.context("recovering an admin")?;
    for step in &recovered.steps {
        println!("recover-admin: {step}");
    }
    println!(
        "recover-admin: done. Start latchd, then: export LATCH_TOKEN_FILE={}",
        recovered.token_file.display()
    );
    Ok(())
}

/// The log opened by a command that runs with latchd stopped (RocksDB's
/// lock makes it fail while latchd runs), to append through the command
/// handler like any request.
struct Offline<'a> {
    settings: &'a ServeArgs,
    store: Arc<EventStore>,
}

impl<'a> Offline<'a> {
    fn open(settings: &'a ServeArgs, command: &str) -> anyhow::Result<Self> {
        let store_dir = settings.data_dir.join(LOG_DIR);
        let store = Arc::new(EventStore::open(&store_dir).with_context(|| {
            format!(
                "opening the event log in {} (stop latchd first: {command} runs with latchd stopped)",
                store_dir.display()
            )
        })?);
        Ok(Self { settings, store })
    }

    /// A command handler on the log, and who runs this on the host (for
    /// the request id its events carry).
    fn handler(self) -> anyhow::Result<(CommandHandler, String)> {
        let clock = self.settings.clock(false)?;
        let (handler, _) = CommandHandler::start(self.store, clock, HandlerConfig::default())
            .context("rebuilding state from the event log")?;
        let operator = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown user".into());
        Ok((handler, operator))
    }
}

/// `latchd key show|rotate`.
pub async fn key(command: KeyCommand, settings: &ServeArgs) -> anyhow::Result<()> {
    let store_dir = settings.data_dir.join(LOG_DIR);
    if let Some(file) = &settings.signing_key {
        let keyring = Keyring::provisioned(file)?;
        return match command {
            KeyCommand::Show => {
                println!("{}", keyring.current().public_key());
                Ok(())
            }
            KeyCommand::Rotate => Err(latchd::KeyringError::Provisioned.into()),
        };
    }
    match command {
        KeyCommand::Show => {
            // Read-only: works beside a running latchd.
            let store = if store_dir.exists() {
                EventStore::open_read_only(&store_dir)
            } else {
                EventStore::open(&store_dir)
            }
            .with_context(|| format!("opening the event log in {}", store_dir.display()))?;
            let keyring = Keyring::open(&settings.data_dir, &store)?;
            let keys = keyring.public_keys();
            println!("{}", keyring.current().public_key());
            if keys.len() > 1 {
                for (from, key) in &keys {
                    eprintln!("  key {} signs from position {from}: {key}", key.id());
                }
            }
            Ok(())
        }
        KeyCommand::Rotate => {
            let offline = Offline::open(settings, "key rotate")?;
            let keyring = Keyring::open(&settings.data_dir, &offline.store)?;
            let (handler, operator) = offline.handler()?;
            let rotated = latchd::rotate_signing_key(&keyring, &handler.handle(), &operator).await;
            handler.shutdown().await;
            let (public_key, from) = rotated.context("rotating the signing key")?;
            println!("{public_key}");
            eprintln!(
                "latchd key rotate: events from position {from} on are signed with this key; verifiers that trust {} follow the rotation from the feed",
                keyring.current().public_key()
            );
            Ok(())
        }
    }
}

