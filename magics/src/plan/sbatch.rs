//! [`SbatchRequest`]: what one Slurm job asks for, typed from the asset's
//! options and the profile's defaults to the moment of submission, where it
//! is rendered to `#SBATCH` lines ([`SbatchRequest::directives`]) — the only
//! place its values become text for Slurm, and where they are checked once
//! more against a strict alphabet.

use serde::{Deserialize, Serialize};

use crate::model::{AssetOptions, Gpus, MemSize, SlurmTime};

/// The resource and placement options of one Slurm job. `None`: not asked
/// for (the partition's default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbatchRequest {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    pub time: Option<SlurmTime>,
    pub nodes: Option<u32>,
    pub ntasks: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<MemSize>,
    /// Rendered as `--gres=gpu:[KIND:]N`.
    pub gpus: Option<Gpus>,
    /// `--requeue` (true) or `--no-requeue` (false) when its node fails;
    /// `None`: the cluster's `JobRequeue`.
    #[serde(default)]
    pub requeue: Option<bool>,
    /// A job array (`--array=0-N%M`): one submission, one queue entry,
    /// `count` tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArraySpec>,
}

/// The tasks of a job array: indices `0..count`, at most `max_parallel`
/// running at once (`--array=0-(count-1)%max_parallel`). Typed numbers:
/// nothing else can reach the directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArraySpec {
    /// Array tasks (not partitions: see `per_task`).
    pub count: u32,
    pub max_parallel: Option<u32>,
    /// Partitions each task runs one after another (the last task may run
    /// fewer); 1: task `i` is the `i`-th partition to run.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub per_task: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// An array Slurm would refuse (or that cannot exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArrayError {
    #[error("a job array needs at least one task")]
    Empty,
    #[error("--max-parallel must be at least 1")]
    ZeroThrottle,
    #[error(
        "{count} array tasks are more than this cluster allows in one job array \
         (MaxArraySize={max}: task indices 0..{last}); select at most {max} partitions at a time \
         (e.g. `NAME[0..{max}]`), run several partitions per task (`--per-task N`) \
         or ask the cluster's admins to raise MaxArraySize",
        last = .max.saturating_sub(1)
    )]
    TooLarge { count: u32, max: u32 },
}

impl ArraySpec {
    /// Check against the cluster's `MaxArraySize` (the largest index must
    /// be below it), when known.
    pub fn check(&self, max_array_size: Option<u32>) -> Result<(), ArrayError> {
        if self.count == 0 {
            return Err(ArrayError::Empty);
        }
        if self.max_parallel == Some(0) {
            return Err(ArrayError::ZeroThrottle);
        }
        match max_array_size {
            Some(max) if self.count > max => Err(ArrayError::TooLarge {
                count: self.count,
                max,
            }),
            _ => Ok(()),
        }
    }

    /// `0-99%16`: the value of `--array`.
    pub fn value(&self) -> String {
        let mut s = format!("0-{}", self.count.saturating_sub(1));
        if let Some(m) = self.max_parallel {
            s.push_str(&format!("%{m}"));
        }
        s
    }
}

impl std::str::FromStr for ArraySpec {
    type Err = String;

    /// `0-99` or `0-99%16` (indices from 0, as slurmbook submits them).
    fn from_str(s: &str) -> Result<ArraySpec, String> {
        let bad = || format!("`{s}`: expected an array as 0-LAST or 0-LAST%MAX_PARALLEL");
        let (range, throttle) = match s.split_once('%') {
            Some((r, t)) => (r, Some(t.parse::<u32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let last = range
            .strip_prefix("0-")
            .and_then(|l| l.parse::<u32>().ok())
            .ok_or_else(bad)?;
        let spec = ArraySpec {
            count: last.checked_add(1).ok_or_else(bad)?,
            max_parallel: throttle,
            per_task: 1,
        };
        spec.check(None).map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// A value Slurm would not get verbatim (it was validated when parsed; this
/// is the second line of defence before it reaches a job script).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value `{value}` of sbatch option `--{option}` is not allowed: use letters, digits and `_ . : , = + / -`")]
pub struct SbatchValueError {
    pub option: &'static str,
    pub value: String,
}

impl SbatchRequest {
    /// The request of an asset: its own options, then the profile's
    /// defaults for what it does not say.
    pub fn for_asset(own: &AssetOptions, defaults: &AssetOptions) -> SbatchRequest {
        SbatchRequest {
            partition: own.partition.clone().or_else(|| defaults.partition.clone()),
            account: own.account.clone().or_else(|| defaults.account.clone()),
            qos: own.qos.clone().or_else(|| defaults.qos.clone()),
            constraint: own
                .constraint
                .clone()
                .or_else(|| defaults.constraint.clone()),
            time: own.time.or(defaults.time),
            nodes: own.nodes.or(defaults.nodes),
            ntasks: own.ntasks.or(defaults.ntasks),
            cpus_per_task: own.cpus.or(defaults.cpus),
            mem: own.mem.or(defaults.mem),
            gpus: own.gpus.clone().or_else(|| defaults.gpus.clone()),
            requeue: own.requeue.or(defaults.requeue),
            array: None,
        }
    }

    /// `(option, value)` pairs in a fixed order: placement (partition,
    /// account, qos, constraint), then resources (time, nodes, ntasks,
    /// cpus-per-task, mem, gres).
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        push("partition", self.partition.clone());
        push("account", self.account.clone());
        push("qos", self.qos.clone());
        push("constraint", self.constraint.clone());
        push("time", self.time.map(|t| t.to_string()));
        push("nodes", self.nodes.map(|n| n.to_string()));
        push("ntasks", self.ntasks.map(|n| n.to_string()));
        push("cpus-per-task", self.cpus_per_task.map(|c| c.to_string()));
        push("mem", self.mem.map(|m| m.to_string()));
        push("gres", self.gpus.as_ref().map(|g| format!("gpu:{g}")));
        push("array", self.array.map(|a| a.value()));
        out
    }

    /// `--requeue`/`--no-requeue`, when asked for (a flag without value).
    pub fn requeue_flag(&self) -> Option<&'static str> {
        self.requeue
            .map(|r| if r { "requeue" } else { "no-requeue" })
    }

    /// `partition=debug time=00:10:00 cpus-per-task=2 requeue`, for plans.
    pub fn describe(&self) -> String {
        self.flags()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .chain(self.requeue_flag().map(str::to_owned))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `#SBATCH --name=value` lines of a batch script, each value
    /// checked against a strict alphabet (no quoting is needed: nothing that
    /// could end a word or start an expansion is ever accepted).
    pub fn directives(&self) -> Result<String, SbatchValueError> {
        let mut s = String::new();
        for (name, value) in self.flags() {
            // The array is typed numbers (its `%` is not in the alphabet).
            if name != "array" {
                check_value(name, &value)?;
            }
            s.push_str(&format!("#SBATCH --{name}={value}\n"));
        }
        if let Some(flag) = self.requeue_flag() {
            s.push_str(&format!("#SBATCH --{flag}\n"));
        }
        Ok(s)
    }

    /// Set one option from its sbatch name and text (`("time", "00:05:00")`),
    /// as a profile or a test states it.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let num = |v: &str| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("`{v}` is not a count >= 1"))
        };
        if name == "array" {
            self.array = Some(value.parse()?);
            return Ok(());
        }
        let alphabet: &'static str = match name {
            "constraint" => "constraint",
            "gres" => "gres",
            _ => "value",
        };
        check_value(alphabet, value).map_err(|e| e.to_string())?;
        match name {
            "partition" => self.partition = Some(value.into()),
            "account" => self.account = Some(value.into()),
            "qos" => self.qos = Some(value.into()),
            "constraint" => self.constraint = Some(value.into()),
            "time" => self.time = Some(value.parse()?),
            "nodes" => self.nodes = Some(num(value)?),
            "ntasks" => self.ntasks = Some(num(value)?),
            "cpus-per-task" => self.cpus_per_task = Some(num(value)?),
            "mem" => self.mem = Some(value.parse()?),
            "requeue" => {
                self.requeue = Some(crate::model::options::spec::flag(Some(value))?);
            }
            "gres" => {
                let g = value
                    .strip_prefix("gpu:")
                    .ok_or_else(|| format!("`{value}`: only gpu:[KIND:]N is supported"))?;
                self.gpus = Some(g.parse()?)
            }
            other => return Err(format!("`--{other}` is not an option slurmbook sets")),
        }
        Ok(())
    }
}

/// The alphabet of sbatch values (with `|&[]*!()` in constraints and `@` in
/// gres). Everything else — whitespace, quotes, `$`, `;`, backticks — is
/// refused.
pub fn check_value(option: &'static str, value: &str) -> Result<(), SbatchValueError> {
    let extra: &[u8] = match option {
        "constraint" => b"|&[]*!()",
        "gres" => b"@",
        _ => b"",
    };
    let ok = !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:,=+/-".contains(&b) || extra.contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SbatchValueError {
            option,
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_option() -> AssetOptions {
        AssetOptions {
            partition: Some("gpu-a100.x".into()),
            time: Some("1-00:00:00".parse().unwrap()),
            cpus: Some(8),
            mem: Some("16G".parse().unwrap()),
            gpus: Some("a100:2".parse().unwrap()),
            nodes: Some(2),
            ntasks: Some(16),
            account: Some("proj_1".into()),
            qos: Some("high,normal".into()),
            constraint: Some("[rack1*2&rack2*4]|skylake".into()),
            requeue: Some(false),
            ..AssetOptions::default()
        }
    }

    #[test]
    fn every_asset_option_renders_as_a_directive() {
        let r = SbatchRequest::for_asset(&every_option(), &AssetOptions::default());
        assert_eq!(r.flags().len(), 10);
        assert_eq!(
            r.directives().unwrap(),
            "#SBATCH --partition=gpu-a100.x\n#SBATCH --account=proj_1\n#SBATCH --qos=high,normal\n\
             #SBATCH --constraint=[rack1*2&rack2*4]|skylake\n#SBATCH --time=1-00:00:00\n\
             #SBATCH --nodes=2\n#SBATCH --ntasks=16\n#SBATCH --cpus-per-task=8\n#SBATCH --mem=16G\n\
             #SBATCH --gres=gpu:a100:2\n#SBATCH --no-requeue\n"
        );
        let mut r = SbatchRequest::default();
        r.set("requeue", "true").unwrap();
        assert_eq!(r.directives().unwrap(), "#SBATCH --requeue\n");
        assert_eq!(r.describe(), "requeue");
        assert!(r.set("requeue", "yes; id").is_err());
    }

    #[test]
    fn the_assets_options_win_over_the_profiles() {
        let own = AssetOptions {
            partition: Some("long".into()),
            ..AssetOptions::default()
        };
        let defaults = AssetOptions {
            partition: Some("debug".into()),
            time: Some("00:05:00".parse().unwrap()),
            ..AssetOptions::default()
        };
        let r = SbatchRequest::for_asset(&own, &defaults);
        assert_eq!(r.describe(), "partition=long time=00:05:00");
    }

    #[test]
    fn rendering_refuses_what_could_break_out_of_a_word() {
        for bad in [
            "cpu; touch /tmp/pwned",
            "a b",
            "$(id)",
            "`id`",
            "x'y",
            "a\nb",
            "",
        ] {
            let r = SbatchRequest {
                partition: Some(bad.into()),
                ..SbatchRequest::default()
            };
            let e = r.directives().unwrap_err();
            assert!(e.to_string().contains("not allowed"), "{e}");
        }
        let r = SbatchRequest {
            constraint: Some("a|b&c".into()),
            ..SbatchRequest::default()
        };
        assert_eq!(r.directives().unwrap(), "#SBATCH --constraint=a|b&c\n");
    }

    #[test]
    fn set_parses_sbatch_names() {
        let mut r = SbatchRequest::default();
        r.set("time", "00:05:00").unwrap();
        r.set("cpus-per-task", "2").unwrap();
        r.set("mem", "100M").unwrap();
        r.set("gres", "gpu:a100:1").unwrap();
        assert_eq!(
            r.describe(),
            "time=00:05:00 cpus-per-task=2 mem=100M gres=gpu:a100:1"
        );
        assert!(r.set("wrap", "id").is_err());
        assert!(r.set("partition", "a;b").is_err());
        assert!(r.set("nodes", "0").is_err());
    }

    #[test]
    fn an_array_renders_as_typed_numbers_and_is_checked_against_the_cluster() {
        let mut r = SbatchRequest::default();
        r.set("array", "0-99%16").unwrap();
        assert_eq!(
            r.array,
            Some(ArraySpec {
                count: 100,
                max_parallel: Some(16),
                per_task: 1,
            })
        );
        assert_eq!(r.directives().unwrap(), "#SBATCH --array=0-99%16\n");
        r.set("array", "0-0").unwrap();
        assert_eq!(r.describe(), "array=0-0");
        for bad in ["1-5", "0-x", "0-3%0", "0-3%", "0-5;id", "0-4294967295"] {
            assert!(r.set("array", bad).is_err(), "{bad}");
        }
        let a = ArraySpec {
            count: 1001,
            max_parallel: None,
            per_task: 1,
        };
        assert!(a.check(Some(1001)).is_ok());
        assert!(a.check(None).is_ok());
        let e = a.check(Some(1000)).unwrap_err().to_string();
        assert!(
            e.contains("1001 array tasks") && e.contains("MaxArraySize=1000"),
            "{e}"
        );
        assert_eq!(
            ArraySpec {
                count: 0,
                max_parallel: None,
                per_task: 1,
            }
            .check(None),
            Err(ArrayError::Empty)
        );
    }
}
