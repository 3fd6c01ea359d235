//! `latchd serve` and `latchd dev`: start a `Node` from the flags and run
//! it until SIGINT/SIGTERM.

use std::path::Path;

use latchd::{ADMIN_TOKEN_FILE, DevNats, Node, nats_answers};

use crate::flags::ServeArgs;

/// What `latchd dev` prints once latchd is ready.
pub struct DevBanner {
    nats: String,
}

pub async fn dev(mut args: ServeArgs) -> anyhow::Result<()> {
    let mut started = None;
    let nats = if nats_answers(&args.nats.nats_url).await {
        format!("{} (already running)", latch_bus::redact_url(&args.nats.nats_url))
    } else {
        let nats_dir = args.data_dir.join("nats");
        eprintln!(
            "latchd dev: no NATS answers at {}; starting nats-server with JetStream (data in {}) ...",
            latch_bus::redact_url(&args.nats.nats_url),
            nats_dir.display()
        );
        let child = DevNats::start(&nats_dir)
            .await
            .map_err(|e| anyhow::anyhow!("latchd dev: {e}"))?;
        args.nats.nats_url = child.url().to_owned();
        let shown = format!(
            "{} (started by latchd dev; log {})",
            child.url(),
            child.log().display()
        );
        started = Some(child);
        shown
    };
    let served = serve(args, Some(DevBanner { nats })).await;
    if let Some(child) = started {
        eprintln!("latchd dev: stopping the nats-server it started");
        child.stop().await;
    }
    served
}

pub async fn serve(settings: ServeArgs, banner: Option<DevBanner>) -> anyhow::Result<()> {
    let node = Node::start(settings.node_config()?).await?;
    if let Some(banner) = banner {
        print_banner(&banner, &node.url(), node.data_dir());
    }
    node.run_until(shutdown_signal()).await?;
    Ok(())
}


fn print_banner(banner: &DevBanner, url: &str, data_dir: &Path) {
    let token = data_dir.join(ADMIN_TOKEN_FILE);
    let token_line = if token.is_file() {
        format!(
            "{}  (export LATCH_TOKEN_FILE={})",
            token.display(),
            token.display()
        )
    } else {
        format!(
            "not in {} (it is written on the first start only; delete {} to start over)",
            token.display(),
            data_dir.display()
        )
    };
    println!(
        "\nLatch is running (dev mode)\n  \
         API:          {url}\n  \
         admin token:  {token_line}\n  \
         NATS:         {}\n  \
         data:         {}\n  \
         try:          latch --url {url} --token-file {} account list\n\
         Ctrl-C stops it.\n",
        banner.nats,
        data_dir.display(),
        token.display(),
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("signal received: no new connections; finishing in-flight requests");
}
