//! `latch completion <shell>`: the shell completion script, made from the
//! same clap definitions as the parser, so it never lags behind a flag.

use std::io::Write;

use clap::Args;
use clap_complete::Shell;

use crate::client::CliError;

/// Where each shell looks for it: shown under `latch completion --help`.
pub const INSTALL: &str = "\
Install it where your shell finds completions, then start a new shell:
  latch completion bash > /etc/bash_completion.d/latch
  latch completion bash > ~/.local/share/bash-completion/completions/latch   (you alone)
  latch completion zsh > \"${fpath[1]}/_latch\"   (compinit must run in ~/.zshrc)
  latch completion fish > ~/.config/fish/completions/latch.fish
Or for the current bash only: eval \"$(latch completion bash)\"";

#[derive(Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the script for `args.shell` completing `command` (the whole
/// `latch` command line). Needs neither latchd nor a token.
pub fn run(args: &CompletionArgs, mut command: clap::Command) -> Result<(), CliError> {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // `| head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Other(format!("writing the script: {e}"))),
    }
}
