//! `epgrpo launch`: starts the processes of one node of a data-parallel run with torchrun's
//! variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`) and waits for them. A launcher only: the processes find each other through
//! the run's `[distributed]` engine (NCCL's id exchange at `MASTER_ADDR:MASTER_PORT`).

use std::process::{Child, Command};
use std::time::Duration;

use crate::error::CliError;

/// Options of `epgrpo launch`.
#[derive(Debug, clap::Args)]
pub struct LaunchArgs {
    /// Processes to start on this node (one per GPU).
    #[arg(long)]
    pub nproc_per_node: usize,
    /// Nodes of the run.
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,
    /// Index of this node (0 on the node that hosts rank 0).
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// Host of rank 0, where the others fetch the NCCL id.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of rank 0 for that exchange.
    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,
    /// The `epgrpo` command every process runs, after `--` (e.g. `-- train --device cuda`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The variables of the process with local rank `local` on this node.
pub fn process_env(args: &LaunchArgs, local: usize) -> Vec<(&'static str, String)> {
    vec![
        (
            "RANK",
            (args.node_rank * args.nproc_per_node + local).to_string(),
        ),
        (
            "WORLD_SIZE",
            (args.nnodes * args.nproc_per_node).to_string(),
        ),
        ("LOCAL_RANK", local.to_string()),
        ("LOCAL_WORLD_SIZE", args.nproc_per_node.to_string()),
        ("MASTER_ADDR", args.master_addr.clone()),
        ("MASTER_PORT", args.master_port.to_string()),
    ]
}

/// Starts the node's processes and waits for all of them; when one fails the others are
/// stopped and the error names it.
pub fn run(args: &LaunchArgs) -> Result<String, CliError> {
    if args.nproc_per_node == 0 || args.nnodes == 0 {
        return Err(CliError::Input(
            "--nproc-per-node and --nnodes must be ≥ 1".into(),
        ));
    }
    if args.node_rank >= args.nnodes {
        return Err(CliError::Input(format!(
            "--node-rank {} must be below --nnodes {}",
            args.node_rank, args.nnodes
        )));
    }
    let program = std::env::current_exe()
        .map_err(|e| CliError::Internal(format!("finding the epgrpo binary: {e}")))?;
    let mut children: Vec<(usize, Child)> = Vec::new();
    for local in 0..args.nproc_per_node {
        let child = Command::new(&program)
            .args(&args.command)
            .envs(process_env(args, local))
            .spawn()
            .map_err(|e| CliError::Internal(format!("starting local rank {local}: {e}")));
        match child {
            Ok(child) => children.push((local, child)),
            Err(e) => {
                stop(&mut children);
                return Err(e);
            }
        }
    }
    let total = children.len();
    while !children.is_empty() {
        let mut finished = None;
        for (index, (local, child)) in children.iter_mut().enumerate() {
            let status = child
                .try_wait()
                .map_err(|e| CliError::Internal(format!("waiting for local rank {local}: {e}")))?;
            if let Some(status) = status {
                finished = Some((index, *local, status));
                break;
            }
        }
        match finished {
            Some((index, _, status)) if status.success() => {
                children.swap_remove(index);
            }
            Some((index, local, status)) => {
                children.swap_remove(index);
                stop(&mut children);
                let rank = args.node_rank * args.nproc_per_node + local;
                return Err(CliError::Internal(format!(
                    "rank {rank} (local rank {local}) failed ({status}); the node's other \
                     processes were stopped"
                )));
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Ok(format!("epgrpo launch: {total} processes finished"))
}

/// Stops the processes still running.
fn stop(children: &mut Vec<(usize, Child)>) {
    for (_, child) in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    children.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::env::{Launcher, from_vars};

    #[test]
    fn every_process_reads_back_its_place() {
        let args = LaunchArgs {
            nproc_per_node: 4,
            nnodes: 2,
            node_rank: 1,
            master_addr: "node0".into(),
            master_port: 29501,
            command: vec!["train".into()],
        };
        for local in 0..4 {
            let vars = process_env(&args, local);
            let placement = from_vars(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            })
            .unwrap();
            assert_eq!(
                (placement.rank, placement.world_size, placement.local_rank),
                (4 + local, 8, local)
            );
            assert_eq!(placement.launcher, Some(Launcher::Torchrun));
        }
    }
}
