use super::*;

fn launch(vars: &[(&str, &str)]) -> Result<Launch> {
    Launch::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
}

fn error(vars: &[(&str, &str)]) -> String {
    match launch(vars) {
        Err(Error::Launch(message)) => message,
        other => panic!("expected a launch error, got {other:?}"),
    }
}

const TORCHRUN: [(&str, &str); 6] = [
    ("RANK", "5"),
    ("WORLD_SIZE", "8"),
    ("LOCAL_RANK", "1"),
    ("LOCAL_WORLD_SIZE", "4"),
    ("MASTER_ADDR", "node01"),
    ("MASTER_PORT", "29500"),
];

#[test]
fn no_variables_is_one_process() {
    assert_eq!(launch(&[]).unwrap(), Launch::single());
    assert_eq!(launch(&[("SLURM_JOB_ID", "7")]).unwrap(), Launch::single());
}

#[test]
fn torchrun_variables() {
    let launch = launch(&TORCHRUN).unwrap();
    let master = Master { host: "node01".into(), port: 29500 };
    let expected = Launch {
        rank: 5,
        world: 8,
        local_rank: 1,
        local_world: Some(4),
        master: Some(master),
        source: Source::Torchrun,
    };
    assert_eq!(launch, expected);
    assert_eq!(launch.describe(), "rank 5 of 8 (local 1 of 4), rendezvous at node01:29500");
}

#[test]
fn torchrun_wins_over_slurm() {
    let mut vars = TORCHRUN.to_vec();
    vars.extend([("SLURM_PROCID", "1"), ("SLURM_NTASKS", "2"), ("SLURM_LOCALID", "0")]);
    let launch = launch(&vars).unwrap();
    assert_eq!((launch.rank, launch.world, launch.source), (5, 8, Source::Torchrun));
}

#[test]
fn slurm_variables() {
    let vars = [
        ("SLURM_PROCID", "6"),
        ("SLURM_NTASKS", "7"),
        ("SLURM_LOCALID", "0"),
        ("SLURM_NODEID", "3"),
        ("SLURM_TASKS_PER_NODE", "2(x3),1"),
        ("SLURM_JOB_NODELIST", "gpu[07-10]"),
        ("SLURM_JOB_ID", "4242"),
    ];
    let launch = launch(&vars).unwrap();
    let master = Master { host: "gpu07".into(), port: 15_000 + 4242 };
    let expected =
        Launch { rank: 6, world: 7, local_rank: 0, local_world: Some(1), master: Some(master), source: Source::Slurm };
    assert_eq!(launch, expected);
}

#[test]
fn master_variables_win_under_slurm() {
    let vars = [
        ("SLURM_PROCID", "1"),
        ("SLURM_NTASKS", "2"),
        ("SLURM_LOCALID", "1"),
        ("SLURM_JOB_NODELIST", "gpu[07-10]"),
        ("SLURM_JOB_ID", "4242"),
        ("MASTER_ADDR", "10.0.0.1"),
        ("MASTER_PORT", "1234"),
    ];
    assert_eq!(launch(&vars).unwrap().master, Some(Master { host: "10.0.0.1".into(), port: 1234 }));
}

#[test]
fn world_of_one_needs_no_master() {
    let launch = launch(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap();
    assert_eq!((launch.rank, launch.world, launch.local_rank, launch.master), (0, 1, 0, None));
}

#[test]
fn inconsistent_values_are_named() {
    let with = |name: &str, value: &'static str| {
        let mut vars = TORCHRUN.to_vec();
        vars.retain(|(n, _)| *n != name);
        if !value.is_empty() {
            vars.push((Box::leak(name.to_string().into_boxed_str()), value));
        }
        error(&vars)
    };
    assert_eq!(with("RANK", "8"), "RANK=8 is not below WORLD_SIZE=8: ranks count from 0");
    assert_eq!(with("WORLD_SIZE", "0"), "WORLD_SIZE=0: a run needs at least one process");
    assert_eq!(with("RANK", "two"), "RANK=\"two\" is not a whole number (0, 1, 2, …)");
    assert_eq!(with("RANK", ""), "RANK is not set: WORLD_SIZE is set; torchrun sets both");
    assert_eq!(with("LOCAL_RANK", "4"), "LOCAL_RANK=4 is not below LOCAL_WORLD_SIZE=4");
    assert_eq!(with("LOCAL_WORLD_SIZE", "9"), "LOCAL_WORLD_SIZE=9 must be between 1 and WORLD_SIZE=8");
    assert!(with("LOCAL_RANK", "").starts_with("LOCAL_RANK is not set: which GPU of its host rank 5 uses"));
    assert!(with("MASTER_ADDR", "").starts_with("MASTER_ADDR is not set"));
    assert_eq!(with("MASTER_PORT", "70000"), "MASTER_PORT=\"70000\" is not a port (1 to 65535)");
    assert_eq!(with("MASTER_PORT", ""), "MASTER_PORT is not set: the port rank 0 listens on is unknown");
}

#[test]
fn partial_launches_are_refused() {
    let message = error(&[("LOCAL_RANK", "0")]);
    assert!(message.contains("RANK and WORLD_SIZE are not"), "{message}");
    let message = error(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")]);
    assert!(message.starts_with("SLURM_LOCALID is not set"), "{message}");
    let message = error(&[("SLURM_PROCID", "2"), ("SLURM_NTASKS", "2"), ("SLURM_LOCALID", "0"), ("MASTER_ADDR", "a")]);
    assert_eq!(message, "SLURM_PROCID=2 is not below SLURM_NTASKS=2: ranks count from 0");
}
