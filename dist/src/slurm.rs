//! What Slurm's own variables say when torchrun's are absent: the tasks on this node
//! (`SLURM_TASKS_PER_NODE`), the first host of the job (`SLURM_JOB_NODELIST`), a port
//! derived from the job id. Pure functions of the variables' text.

/// The tasks Slurm started on node `node` (`SLURM_NODEID`) from `SLURM_TASKS_PER_NODE`,
/// whose form is `2(x3),1`: three nodes of 2 tasks, then one of 1. `None` when the text
/// is not of that form or has fewer nodes.
pub fn tasks_on_node(spec: &str, node: usize) -> Option<usize> {
    let mut first = 0;
    for group in spec.split(',') {
        let (tasks, repeat) = match group.split_once("(x") {
            Some((tasks, rest)) => (tasks, rest.strip_suffix(')')?.trim().parse::<usize>().ok()?),
            None => (group, 1),
        };
        let tasks = tasks.trim().parse::<usize>().ok()?;
        if node < first + repeat {
            return Some(tasks);
        }
        first += repeat;
    }
    None
}

/// The first host of a Slurm node list (`SLURM_JOB_NODELIST`), as `scontrol show
/// hostnames | head -n 1` prints it: `node[07-09,12],gpu1` gives `node07`.
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    let end = top_level_comma(list).unwrap_or(list.len());
    let first = &list[..end];
    let Some(open) = first.find('[') else {
        return (!first.is_empty()).then(|| first.to_string());
    };
    let close = first[open..].find(']')? + open;
    let range = first[open + 1..close].split(',').next()?;
    let start = range.split('-').next()?.trim();
    if start.is_empty() || !start.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}{start}{}", &first[..open], &first[close + 1..]))
}

/// The first comma outside brackets.
fn top_level_comma(text: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (at, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => return Some(at),
            _ => {}
        }
    }
    None
}

/// The port rank 0 listens on when `MASTER_PORT` is unset under Slurm: 15000 plus the
/// job id modulo 20000, so two jobs sharing a node rarely collide.
pub fn port_for_job(job_id: u64) -> u16 {
    15_000 + (job_id % 20_000) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_per_node_reads_repeats() {
        assert_eq!(tasks_on_node("4", 0), Some(4));
        assert_eq!(tasks_on_node("4", 1), None);
        assert_eq!(tasks_on_node("2(x3),1", 0), Some(2));
        assert_eq!(tasks_on_node("2(x3),1", 2), Some(2));
        assert_eq!(tasks_on_node("2(x3),1", 3), Some(1));
        assert_eq!(tasks_on_node("8(x2)", 1), Some(8));
        assert_eq!(tasks_on_node("two", 0), None);
        assert_eq!(tasks_on_node("2(x3", 0), None);
    }

    #[test]
    fn first_host_expands_the_first_range() {
        assert_eq!(first_host("node07").as_deref(), Some("node07"));
        assert_eq!(first_host("a,b").as_deref(), Some("a"));
        assert_eq!(first_host("node[07-09,12],gpu1").as_deref(), Some("node07"));
        assert_eq!(first_host("gpu-[3,5-6]").as_deref(), Some("gpu-3"));
        assert_eq!(first_host("n[001-004]-ib").as_deref(), Some("n001-ib"));
        assert_eq!(first_host(""), None);
        assert_eq!(first_host("n[x-y]"), None);
    }

    #[test]
    fn job_ports_stay_in_range() {
        assert_eq!(port_for_job(0), 15_000);
        assert_eq!(port_for_job(123_456), 15_000 + 3_456);
        assert!(port_for_job(u64::MAX) < 35_000);
    }
}
