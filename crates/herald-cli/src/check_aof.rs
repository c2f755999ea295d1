//! `herald check-aof FILE [--fix]`: reports whether an append-only file loads, and where
//! it stops if not; `--fix` cuts it after its last whole entry (saving what it cuts).
//!
//! Exit codes: 0 the file is sound (or was repaired), 1 it is damaged (without `--fix`),
//! 2 it cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use herald_server::persistence::check::{check_file, fix_file, FormatError};

/// Arguments of `herald check-aof`.
#[derive(Debug, Args)]
pub struct CheckAofArgs {
    /// The append-only file to check.
    file: PathBuf,
    /// Cut the file after its last whole entry; the bytes cut are saved to FILE.discarded.
    #[arg(long)]
    fix: bool,
}

/// Runs the check (and the repair).
pub fn main(args: CheckAofArgs) -> ExitCode {
    let shown = args.file.display();
    let report = match check_file(&args.file) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("herald check-aof: cannot read {shown}: {err}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{shown}: {} bytes, {} entries, {} commands",
        report.size, report.entries, report.commands
    );
    let Some(problem) = &report.problem else {
        if report.valid_up_to < report.size {
            println!(
                "AOF is valid: its records end at offset {}, followed by {} bytes of zeros \
                 (written ahead under appendfsync always; a clean shutdown removes them)",
                report.valid_up_to,
                report.size - report.valid_up_to
            );
        } else {
            println!("AOF is valid");
        }
        return ExitCode::SUCCESS;
    };
    match problem {
        FormatError::Truncated { offset } => println!(
            "AOF is truncated: the record at offset {offset} is incomplete ({} bytes after the last whole entry)",
            report.size - offset
        ),
        other => println!("AOF is damaged: {other}"),
    }
    if !args.fix {
        println!(
            "run with --fix to cut the file at offset {}",
            report.valid_up_to
        );
        return ExitCode::FAILURE;
    }
    match fix_file(&args.file) {
        Ok(outcome) => {
            if let Some(saved) = outcome.saved_to {
                println!(
                    "cut {shown} to {} bytes; the {} bytes removed are in {}",
                    outcome.report.valid_up_to,
                    outcome.report.size - outcome.report.valid_up_to,
                    saved.display()
                );
            }
            println!("AOF is valid");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("herald check-aof: cannot repair {shown}: {err}");
            ExitCode::from(2)
        }
    }
}
