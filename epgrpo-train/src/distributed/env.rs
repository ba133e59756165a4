//! Who this process is: rank, world size and local rank, read from the variables that torchrun,
//! Slurm or OpenMPI set for every process they start.

use crate::error::CliError;

/// A launcher whose variables were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// torchrun or `epgrpo launch`: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`.
    Torchrun,
    /// OpenMPI's `mpirun`: `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`,
    /// `OMPI_COMM_WORLD_LOCAL_RANK`.
    OpenMpi,
    /// Slurm's `srun`: `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`.
    Slurm,
}

impl Launcher {
    /// All launchers, innermost first (the order in which they are preferred).
    const ALL: [Launcher; 3] = [Launcher::Torchrun, Launcher::OpenMpi, Launcher::Slurm];

    /// Names of the rank, world-size and local-rank variables.
    fn variables(self) -> [&'static str; 3] {
        match self {
            Launcher::Torchrun => ["RANK", "WORLD_SIZE", "LOCAL_RANK"],
            Launcher::OpenMpi => [
                "OMPI_COMM_WORLD_RANK",
                "OMPI_COMM_WORLD_SIZE",
                "OMPI_COMM_WORLD_LOCAL_RANK",
            ],
            Launcher::Slurm => ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"],
        }
    }

    /// The name `EPGRPO_LAUNCHER` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Launcher::Torchrun => "torchrun",
            Launcher::OpenMpi => "openmpi",
            Launcher::Slurm => "slurm",
        }
    }
}

/// This process's place among the processes of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// 0-based index of this process.
    pub rank: usize,
    /// Number of processes.
    pub world_size: usize,
    /// Index of this process on its node (its device ordinal).
    pub local_rank: usize,
    /// The launcher the numbers come from (`None`: a plain single process).
    pub launcher: Option<Launcher>,
}

impl Placement {
    /// A process started on its own.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            launcher: None,
        }
    }
}

/// The placement of this process from its environment.
pub fn detect() -> Result<Placement, CliError> {
    from_vars(|name| std::env::var(name).ok())
}

/// The placement from variables looked up by `var`. The launcher's variables must be complete
/// and consistent; when several launchers' variables are present (one launcher started inside
/// another's allocation) the innermost one wins if the others describe a single process, and
/// two that both describe several processes must agree, or `EPGRPO_LAUNCHER` names the one to
/// use.
pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Placement, CliError> {
    let chosen = match var("EPGRPO_LAUNCHER") {
        Some(name) => {
            let launcher = Launcher::ALL
                .into_iter()
                .find(|l| l.name() == name.trim())
                .ok_or_else(|| {
                    CliError::Input(format!(
                        "EPGRPO_LAUNCHER={name:?}: expected torchrun, openmpi or slurm"
                    ))
                })?;
            return read(launcher, &var)?.ok_or_else(|| {
                let [rank, world, _] = launcher.variables();
                CliError::Input(format!(
                    "EPGRPO_LAUNCHER={name}: {rank} and {world} are not set"
                ))
            });
        }
        None => Launcher::ALL
            .into_iter()
            .map(|l| read(l, &var))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let found: Vec<Placement> = chosen.into_iter().flatten().collect();
    let Some(first) = found.first() else {
        return Ok(Placement::single());
    };
    let several: Vec<&Placement> = found.iter().filter(|p| p.world_size > 1).collect();
    if let [a, b, ..] = several.as_slice()
        && (a.rank, a.world_size) != (b.rank, b.world_size)
    {
        let describe = |p: &Placement| {
            let launcher = p.launcher.expect("read from a launcher");
            let [rank, world, _] = launcher.variables();
            format!("{rank}={} {world}={}", p.rank, p.world_size)
        };
        return Err(CliError::Input(format!(
            "the launch variables disagree: {} but {}; set EPGRPO_LAUNCHER to torchrun, openmpi \
             or slurm to say which launcher started this process",
            describe(a),
            describe(b)
        )));
    }
    Ok(several.first().copied().unwrap_or(first).clone())
}

/// The placement that `launcher`'s variables describe, `None` when its rank and world-size
/// variables are both unset.
fn read(
    launcher: Launcher,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Placement>, CliError> {
    let [rank_var, world_var, local_var] = launcher.variables();
    let number = |name: &str| -> Result<Option<usize>, CliError> {
        var(name)
            .map(|text| {
                text.trim().parse::<usize>().map_err(|_| {
                    CliError::Input(format!("{name}={text:?}: expected a whole number ≥ 0"))
                })
            })
            .transpose()
    };
    let (rank, world) = match (number(rank_var)?, number(world_var)?) {
        (None, None) => return Ok(None),
        (Some(rank), Some(world)) => (rank, world),
        (Some(_), None) => {
            return Err(CliError::Input(format!(
                "{rank_var} is set but {world_var} is not: the launcher sets both"
            )));
        }
        (None, Some(_)) => {
            return Err(CliError::Input(format!(
                "{world_var} is set but {rank_var} is not: the launcher sets both"
            )));
        }
    };
    if world == 0 || rank >= world {
        return Err(CliError::Input(format!(
            "{rank_var}={rank} {world_var}={world}: expected {world_var} ≥ 1 and {rank_var} < \
             {world_var}"
        )));
    }
    let local_rank = number(local_var)?.unwrap_or(0);
    if local_rank > rank {
        return Err(CliError::Input(format!(
            "{local_var}={local_rank} is larger than {rank_var}={rank}: the local rank counts the \
             processes of one node"
        )));
    }
    Ok(Some(Placement {
        rank,
        world_size: world,
        local_rank,
        launcher: Some(launcher),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(vars: &[(&str, &str)]) -> Result<Placement, CliError> {
        from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn each_launcher_is_read() {
        assert_eq!(place(&[]).unwrap(), Placement::single());
        let torch = place(&[("RANK", "3"), ("WORLD_SIZE", "8"), ("LOCAL_RANK", "3")]).unwrap();
        assert_eq!((torch.rank, torch.world_size, torch.local_rank), (3, 8, 3));
        assert_eq!(torch.launcher, Some(Launcher::Torchrun));
        let mpi = place(&[
            ("OMPI_COMM_WORLD_RANK", "5"),
            ("OMPI_COMM_WORLD_SIZE", "6"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ])
        .unwrap();
        assert_eq!((mpi.rank, mpi.world_size, mpi.local_rank), (5, 6, 1));
        let slurm = place(&[
            ("SLURM_PROCID", "9"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
        ])
        .unwrap();
        assert_eq!(
            (slurm.rank, slurm.world_size, slurm.launcher),
            (9, 16, Some(Launcher::Slurm))
        );
    }

    #[test]
    fn nested_launchers_agree_or_are_named() {
        // torchrun started by a one-task srun: the inner launcher counts.
        let nested = place(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
            ("RANK", "2"),
            ("WORLD_SIZE", "4"),
        ])
        .unwrap();
        assert_eq!((nested.rank, nested.world_size), (2, 4));
        let clash = [
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("RANK", "2"),
            ("WORLD_SIZE", "4"),
        ];
        let error = place(&clash).unwrap_err().to_string();
        assert!(
            error.contains("RANK=2 WORLD_SIZE=4")
                && error.contains("SLURM_PROCID=1 SLURM_NTASKS=2")
                && error.contains("EPGRPO_LAUNCHER"),
            "{error}"
        );
        let mut chosen = clash.to_vec();
        chosen.push(("EPGRPO_LAUNCHER", "slurm"));
        assert_eq!(place(&chosen).unwrap().world_size, 2);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("RANK", "1")], "RANK is set but WORLD_SIZE is not"),
            (&[("RANK", "x"), ("WORLD_SIZE", "2")], "RANK=\"x\""),
            (&[("RANK", "2"), ("WORLD_SIZE", "2")], "RANK < WORLD_SIZE"),
            (
                &[("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1")],
                "LOCAL_RANK=1",
            ),
            (&[("EPGRPO_LAUNCHER", "pbs")], "EPGRPO_LAUNCHER=\"pbs\""),
        ];
        for (vars, expected) in cases {
            let error = place(vars).unwrap_err().to_string();
            assert!(error.contains(expected), "{vars:?}: {error}");
        }
    }
}
