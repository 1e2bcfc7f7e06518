//! The README's CLI reference: every command's `--help`, generated from the clap definitions
//! and checked against the README (`UPDATE_DOCS=1 cargo test` refreshes it).

use clap::CommandFactory;

use super::Cli;

/// Every command's `--help`, subcommands' too (`state reset`), as the README's CLI
/// reference shows it.
fn reference() -> String {
    let mut command = Cli::command().term_width(100);
    command.build();
    let mut out = format!(
        "```text\n$ longshore --help\n{}```\n",
        command.render_long_help()
    );
    write_subcommands(&mut out, &command, "longshore");
    out
}

fn write_subcommands(out: &mut String, command: &clap::Command, path: &str) {
    for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
        let name = format!("{path} {}", sub.get_name());
        let help = sub.clone().bin_name(&name).render_long_help();
        out.push_str(&format!("\n```text\n$ {name} --help\n{help}```\n"));
        write_subcommands(out, sub, &name);
    }
}

#[test]
fn every_subcommand_is_in_the_cli_reference() {
    let text = reference();
    for command in ["state reset", "state forget", "state show"] {
        assert!(
            text.contains(&format!("$ longshore {command} --help")),
            "{command}"
        );
    }
}

#[test]
fn readme_cli_reference_is_current() {
    crate::pipeline::reference::check_generated_block(
        "README.md",
        "cli-reference",
        &format!("\n{}\n", reference()),
    );
}

#[test]
fn the_cli_definition_is_consistent() {
    Cli::command().debug_assert();
}
